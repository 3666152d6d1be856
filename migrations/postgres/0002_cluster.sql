-- The cluster's own name, made once by its first node: the nodes of one
-- database talk on Redis channels named after it, so that clusters sharing
-- a Redis (staging and production, parallel test runs) never hear each other.
create table cluster (
    only_row    int primary key default 1 check (only_row = 1),
    cluster_key text not null,
    created_at  text not null
);
