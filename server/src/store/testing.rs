//! Databases for tests: every store test runs on SQLite (a file in a temp
//! dir) and, when `DUET_TEST_POSTGRES_URL` names a Postgres server (as
//! `make test` starts one), on a fresh database of its own there.

use super::Store;

/// The environment variable naming the test suite's Postgres server.
pub const POSTGRES_ENV: &str = "DUET_TEST_POSTGRES_URL";

/// A URL for a new, empty Postgres database on the suite's server, if
/// there is one.
pub async fn fresh_postgres_url() -> Option<String> {
    use sqlx::Connection;
    let admin = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())?;
    let name = format!(
        "duet_test_{}",
        super::random_id(9).to_lowercase().replace(['-', '_'], "x")
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin} does not answer: {e}"));
    sqlx::query(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .expect("test database created");
    let base = match admin.rfind('/') {
        Some(i) if admin[..i].contains("://") && i > admin.find("://").unwrap_or(0) + 2 => {
            &admin[..i]
        }
        _ => admin.as_str(),
    };
    let query = admin
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Some(format!("{base}/{name}{query}"))
}

/// Every backend a store test should run on: `("sqlite", store)` on a file
/// in `dir`, and `("postgres", store)` when the suite has Postgres.
pub async fn stores(dir: &std::path::Path) -> Vec<(&'static str, Store)> {
    let sqlite = Store::open(&format!("sqlite://{}", dir.join("test.db").display()))
        .await
        .expect("SQLite store");
    let mut out = vec![("sqlite", sqlite)];
    if let Some(url) = fresh_postgres_url().await {
        out.push(("postgres", Store::open(&url).await.expect("Postgres store")));
    }
    out
}
