-- The names of an imported challenge's authors (CONTRACT §7): the users of
-- the server it came from are not this server's users, and its updates
-- carry only their ids. A name here is used when `user` has none.
create table challenge_author (
    challenge_id text not null references challenge (challenge_id),
    user_id      text not null,
    first_name   text not null,
    primary key (challenge_id, user_id)
);
