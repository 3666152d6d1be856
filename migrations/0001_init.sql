-- Users, challenges, and each challenge's document: an append-only log of
-- Yjs updates (who, when) plus snapshots written by compaction.

create table user (
    user_id     text primary key,
    first_name  text not null,
    created_at  text not null
);

create table challenge (
    challenge_id text primary key,
    user_id      text not null references user (user_id),
    title        text not null,
    prompt       text not null,
    language     text not null,
    -- Always the text of the document: written in the same transaction as
    -- every update.
    response     text not null default '',
    created_at   text not null,
    updated_at   text not null
);

create index challenge_by_user on challenge (user_id, created_at desc);

create table doc_update (
    doc_update_id integer primary key autoincrement,
    challenge_id  text not null references challenge (challenge_id),
    -- Who made the edit (null for server-side edits).
    user_id       text,
    update_v1     blob not null,
    created_at    text not null
);

create index doc_update_by_challenge on doc_update (challenge_id, doc_update_id);

create table doc_snapshot (
    challenge_id   text primary key references challenge (challenge_id),
    -- The whole document as one Yjs v1 update.
    state_v1       blob not null,
    -- Every doc_update of this challenge up to this id is in the snapshot.
    last_update_id integer not null,
    created_at     text not null
);
