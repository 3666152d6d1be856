//! The suite's throwaway Postgres and Redis (`scripts/services.sh`, started
//! once per `make test`, which exports `DUET_TEST_POSTGRES_URL`,
//! `DUET_TEST_REDIS_URL` and `DUET_TEST_SERVICES_DIR`): a fresh database per
//! test, dropped with it, and the faults (`fault(&["pg-stop", "fast"])`).
//! Without the services (a bare `cargo test`) `fresh_database` and
//! `redis_url` say so on stderr and return `None`, and the test skips
//! itself; `scripts/services.sh run -- cargo test ...` provides them.
//!
//! The services are shared by the tests of a binary, which run in parallel:
//! a test that stops Postgres or Redis belongs in a test binary of its own
//! whose tests cannot overlap (one test, or a lock), and starts them again.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Numbers the databases of this process (the pid tells processes apart).
static NEXT: AtomicU32 = AtomicU32::new(0);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn skipped(what: &str) {
    eprintln!(
        "skipped: {what} is not set; run under `make test` or \
         `scripts/services.sh run -- cargo test ...`"
    );
}

/// `DUET_TEST_POSTGRES_URL`: the suite's Postgres (its `duet_test` database;
/// the role may create databases).
pub fn postgres_url() -> Option<String> {
    var("DUET_TEST_POSTGRES_URL")
}

/// `DUET_TEST_REDIS_URL` (`redis://127.0.0.1:<port>`), or `None` (and a
/// skip line on stderr).
pub fn redis_url() -> Option<String> {
    let url = var("DUET_TEST_REDIS_URL");
    if url.is_none() {
        skipped("DUET_TEST_REDIS_URL");
    }
    url
}

/// An empty database of its own on the suite's Postgres, dropped (with its
/// connections) when this value is.
pub struct PgDatabase {
    /// `postgres://duet:<password>@127.0.0.1:<port>/<name>`: a DATABASE_URL.
    pub url: String,
    pub name: String,
    admin: String,
}

/// A fresh database, or `None` (and a skip line on stderr) without the
/// services.
pub fn fresh_database() -> Option<PgDatabase> {
    let Some(admin) = postgres_url() else {
        skipped("DUET_TEST_POSTGRES_URL");
        return None;
    };
    let name = format!(
        "duet_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    psql(
        &admin,
        &format!("CREATE DATABASE \"{name}\" TEMPLATE template0"),
    )
    .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    Some(PgDatabase {
        url: with_database(&admin, &name),
        name,
        admin,
    })
}

/// `fresh_database`, or a panic saying how to get the services: for tests
/// that must not skip.
pub fn require_database() -> PgDatabase {
    fresh_database().expect(
        "DUET_TEST_POSTGRES_URL is not set: run under `make test` or `scripts/services.sh run -- cargo test ...`",
    )
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Postgres may be stopped by then (a fault test): the run's teardown
        // removes everything anyway.
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// `url` with its database (the last path segment) replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let head = base.rsplit_once('/').map_or(base, |(h, _)| h);
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

/// Runs `sql` with psql (`DUET_TEST_PSQL`, else `psql` on the PATH) on
/// `url`; its unaligned, tuples-only output, trimmed.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let bin = var("DUET_TEST_PSQL").unwrap_or_else(|| "psql".into());
    let out = Command::new(&bin)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("running {bin}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A fault on the suite's services, through `scripts/services.sh`:
/// `["pg-stop", "fast" | "immediate"]`, `["pg-start"]`, `["redis-stop",
/// "TERM" | "KILL"]`, `["redis-start"]`, `["redis-pause"]`,
/// `["redis-resume"]` (each a no-op when already so). Panics on failure.
pub fn fault(args: &[&str]) {
    let script = var("DUET_TEST_SERVICES").unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh").to_string()
    });
    let out = Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "services.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
