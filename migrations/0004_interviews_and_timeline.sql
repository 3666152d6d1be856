-- Interviews (CONTRACT §6): who may act as interviewer, whether candidates
-- may edit, whether the interview has ended, whether Run is allowed.
alter table challenge add column interviewer_key text not null default '';
alter table challenge add column status text not null default 'live';
alter table challenge add column ended_at text;
alter table challenge add column locked integer not null default 0;
alter table challenge add column run_enabled integer not null default 1;
-- Challenges created before get a key of their own (96 random bits).
update challenge set interviewer_key = lower(hex(randomblob(12))) where interviewer_key = '';

-- A challenge has more than one document: 0 the answer, 1 the interviewers'
-- private notes. Each update also records what it did to the text, in
-- characters (UTF-16 units), for the timeline (CONTRACT §7).
alter table doc_update add column doc integer not null default 0;
alter table doc_update add column inserted integer not null default 0;
alter table doc_update add column deleted integer not null default 0;
drop index doc_update_by_challenge;
create index doc_update_by_doc on doc_update (challenge_id, doc, doc_update_id);

create table doc_snapshot_v2 (
    challenge_id   text not null references challenge (challenge_id),
    doc            integer not null default 0,
    state_v1       blob not null,
    last_update_id integer not null,
    created_at     text not null,
    primary key (challenge_id, doc)
);
insert into doc_snapshot_v2 (challenge_id, doc, state_v1, last_update_id, created_at)
    select challenge_id, 0, state_v1, last_update_id, created_at from doc_snapshot;
drop table doc_snapshot;
alter table doc_snapshot_v2 rename to doc_snapshot;

-- Everything else that happened in a room, in order (CONTRACT §7): joins,
-- leaves, pastes, away / back, runs, lock / unlock / end. `data` is JSON
-- (`{"chars": 120}`, `{"exit": 0, ...}`).
create table timeline_event (
    timeline_event_id integer primary key autoincrement,
    challenge_id      text not null references challenge (challenge_id),
    user_id           text,
    first_name        text not null default '',
    kind              text not null,
    data              text not null default '{}',
    created_at        text not null,
    -- The last doc_update committed before it (of any challenge): orders
    -- an event among the edits of the same instant.
    after_update_id   integer not null default 0
);
create index timeline_event_by_challenge on timeline_event (challenge_id, timeline_event_id);

-- Every snapshot a room writes is also kept here, so the answer can be
-- rebuilt as it was at any instant (`GET /api/challenges/:id/text?at=`)
-- from the checkpoint before it and a short tail of updates.
create table doc_checkpoint (
    challenge_id   text not null references challenge (challenge_id),
    doc            integer not null default 0,
    last_update_id integer not null,
    state_v1       blob not null,
    created_at     text not null,
    primary key (challenge_id, doc, last_update_id)
);
