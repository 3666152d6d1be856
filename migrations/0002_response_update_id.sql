-- `challenge.response` may be written later than the updates it reflects
-- (busy rooms are written at most every few seconds). Record which update
-- it reflects, so start-up can rebuild the responses a crash left behind.
alter table challenge add column response_update_id integer not null default 0;
