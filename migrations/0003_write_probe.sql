-- One row the group-commit writer rewrites while its commits fail (a full
-- disk), to tell when writes work again (`/healthz` is 503 until then).
create table write_probe (
    write_probe_id integer primary key,
    written_at     text not null
);
