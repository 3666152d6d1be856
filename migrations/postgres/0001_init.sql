-- The schema of `migrations/` (SQLite) for Postgres, in its current form,
-- plus what many nodes need: each document's updates are numbered by
-- `seq`, counted in `doc_head` under a row lock, so commits of one room by
-- different nodes are numbered gap-free in commit order (a node that
-- misses a number on the bus fetches it). Integers are bigint (Duet reads
-- them as i64); times are the same fixed-width RFC 3339 text as in SQLite.

create table "user" (
    user_id     text primary key,
    first_name  text not null,
    created_at  text not null
);

create table challenge (
    challenge_id       text primary key,
    user_id            text not null references "user" (user_id),
    title              text not null,
    prompt             text not null,
    language           text not null,
    response           text not null default '',
    created_at         text not null,
    updated_at         text not null,
    response_update_id bigint not null default 0,
    interviewer_key    text not null default '',
    status             text not null default 'live',
    ended_at           text,
    locked             bigint not null default 0,
    run_enabled        bigint not null default 1
);

create index challenge_by_user on challenge (user_id, created_at desc);

create table doc_head (
    challenge_id text not null references challenge (challenge_id),
    doc          bigint not null,
    seq          bigint not null,
    primary key (challenge_id, doc)
);

create table doc_update (
    doc_update_id bigserial primary key,
    challenge_id  text not null references challenge (challenge_id),
    doc           bigint not null default 0,
    seq           bigint not null,
    user_id       text,
    update_v1     bytea not null,
    inserted      bigint not null default 0,
    deleted       bigint not null default 0,
    created_at    text not null,
    unique (challenge_id, doc, seq)
);

create table doc_snapshot (
    challenge_id   text not null references challenge (challenge_id),
    doc            bigint not null default 0,
    state_v1       bytea not null,
    -- Every update of this document up to this seq is in the snapshot.
    last_update_id bigint not null,
    created_at     text not null,
    primary key (challenge_id, doc)
);

create table doc_checkpoint (
    challenge_id   text not null references challenge (challenge_id),
    doc            bigint not null default 0,
    last_update_id bigint not null,
    state_v1       bytea not null,
    created_at     text not null,
    primary key (challenge_id, doc, last_update_id)
);

create table timeline_event (
    timeline_event_id bigserial primary key,
    challenge_id      text not null references challenge (challenge_id),
    user_id           text,
    first_name        text not null default '',
    kind              text not null,
    data              text not null default '{}',
    created_at        text not null,
    -- The answer's seq committed before it: orders it among the edits.
    after_update_id   bigint not null default 0
);

create index timeline_event_by_challenge on timeline_event (challenge_id, timeline_event_id);

create table write_probe (
    write_probe_id bigint primary key,
    written_at     text not null
);
