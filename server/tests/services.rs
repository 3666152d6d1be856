//! The suite's Postgres and Redis as `tests/common/services.rs` hands them
//! out: fresh databases are distinct, durable and dropped with their value;
//! Redis answers. Skipped without the services (a bare `cargo test`).

mod common;

use common::services;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn fresh_databases_are_distinct_durable_and_dropped() {
    let Some(a) = services::fresh_database() else {
        return;
    };
    let b = services::require_database();
    assert_ne!(a.name, b.name);
    assert_eq!(
        services::psql(&a.url, "select current_database()").unwrap(),
        a.name
    );
    assert_eq!(services::psql(&b.url, "show fsync").unwrap(), "on");
    assert_eq!(
        services::psql(&b.url, "show synchronous_commit").unwrap(),
        "on"
    );
    let admin = services::postgres_url().unwrap();
    let count = format!(
        "select count(*) from pg_database where datname = '{}'",
        a.name
    );
    assert_eq!(services::psql(&admin, &count).unwrap(), "1");
    drop(a);
    assert_eq!(services::psql(&admin, &count).unwrap(), "0");
}

#[test]
fn database_urls_keep_everything_but_the_name() {
    assert_eq!(
        services::with_database("postgres://u:p@127.0.0.1:5/duet_test", "x"),
        "postgres://u:p@127.0.0.1:5/x"
    );
    assert_eq!(
        services::with_database("postgres://u@h:5/d?sslmode=disable", "x"),
        "postgres://u@h:5/x?sslmode=disable"
    );
}

#[tokio::test]
async fn redis_answers_ping() {
    let Some(url) = services::redis_url() else {
        return;
    };
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}
