//! The database: SQLite (the embedded default: WAL, `synchronous=FULL`,
//! busy timeout, foreign keys) or Postgres (`DATABASE_URL=postgres://…`,
//! the shared database of a cluster, CONTRACT §5). A sqlx pool serves reads
//! and small writes, with the embedded migrations of each backend
//! (`migrations/`, `migrations/postgres/`), and every query, grouped by
//! table: [`users`], [`challenges`], [`docs`] (reading a document's log),
//! [`timeline`]; the group-commit [`writer`] of the update log, snapshots
//! and responses has a connection and a thread of its own.
//!
//! Queries are written once, with `$1`-style parameters (which sqlx's SQLite
//! driver reads too), and run on either pool through [`on_db!`]; the few
//! that differ say so.
//!
//! The store knows rows, not documents: it hands out logs and takes what
//! the product computed from them (`challenges::read` repairs responses).

pub mod challenges;
pub mod docs;
mod raw;
#[doc(hidden)]
pub mod testing;
pub mod timeline;
pub mod users;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// The pool of one backend or the other.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever backend
/// it is (the body is compiled once per backend).
#[macro_export]
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// How long a request waits for a Postgres connection before it fails:
/// edits get "unavailable" within 5 s of the database going away (CONTRACT
/// §5), never an ok.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_a_fixed_width() {
        let t = super::timestamp();
        assert_eq!(t.len(), "2026-11-21T23:52:22.221Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }

    async fn pragma(store: &Store, name: &str) -> String {
        let row: (String,) =
            sqlx::query_as(&format!("select cast({name} as text) from pragma_{name}"))
                .fetch_one(store.sqlite_pool().unwrap())
                .await
                .unwrap();
        row.0
    }

    /// A new database gets small pages (and WAL); one made with SQLite's
    /// default 4 KiB pages (by an earlier Duet) opens as it is, data kept.
    #[tokio::test]
    async fn new_databases_get_small_pages_and_old_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let new = Store::open(&format!("sqlite://{}", dir.path().join("new.db").display()))
            .await
            .unwrap();
        assert_eq!(pragma(&new, "page_size").await, PAGE_SIZE.to_string());
        assert_eq!(pragma(&new, "journal_mode").await, "wal");
        new.close().await;

        let old_path = dir.path().join("old.db");
        let old_url = format!("sqlite://{}", old_path.display());
        {
            let options = SqliteConnectOptions::from_str(&old_url)
                .unwrap()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let pool = SqlitePoolOptions::new()
                .connect_with(options)
                .await
                .unwrap();
            sqlx::migrate!("../migrations").run(&pool).await.unwrap();
            pool.close().await;
        }
        let old = Store::open(&old_url).await.unwrap();
        assert_eq!(pragma(&old, "page_size").await, "4096");
        let user = old.create_user("Old").await.unwrap();
        old.close().await;
        let again = Store::open(&old_url).await.unwrap();
        assert_eq!(pragma(&again, "page_size").await, "4096");
        assert!(again.get_user(&user.id).await.unwrap().is_some());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A transaction of the writer failed; `code` is SQLite's extended
    /// result code (13 `SQLITE_FULL`, 5 `SQLITE_BUSY`, 10 `SQLITE_IOERR`...).
    #[error("commit failed: {msg} (SQLite code {code})")]
    CommitFailed { code: i32, msg: String },
    /// The database file was deleted under the running server: its open
    /// descriptors still work, but nothing written would survive a restart.
    #[error("the database file is gone")]
    DatabaseGone,
    /// Not written: an earlier commit of the same room failed, and the
    /// room has not reloaded its document since (see `writer`).
    #[error("not written after a failed commit of the same room")]
    AfterFailure,
    #[error("the document writer has stopped")]
    WriterGone,
    /// The database server cannot be reached (Postgres stopped, the
    /// network cut, a commit that did not return in time).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// The write was not stored because a commit failed (this one, or an
    /// earlier one of the same room): whoever queued it holds state the
    /// log lacks, and must reload from the log.
    pub fn lost_a_write(&self) -> bool {
        matches!(
            self,
            Error::CommitFailed { .. }
                | Error::DatabaseGone
                | Error::AfterFailure
                | Error::Unavailable(_)
        )
    }

    /// The database is unreachable, not refusing: worth trying again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::DatabaseGone => true,
            Error::Db(err) => unreachable_db(err),
            _ => false,
        }
    }
}

/// A sqlx error that says the database could not be reached (rather than
/// that it refused what was asked): no connection, a dropped one, a
/// server shutting down (SQLSTATE class 08 and 57P).
pub fn unreachable_db(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(e, msg) => Error::CommitFailed {
                code: e.extended_code,
                msg: msg.unwrap_or_else(|| e.to_string()),
            },
            other => Error::CommitFailed {
                code: -1,
                msg: other.to_string(),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What an acknowledged edit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Every commit is fsynced (`synchronous=FULL`): survives a power cut.
    Fsync,
    /// Committed to the WAL without waiting for the disk
    /// (`synchronous=NORMAL`): survives a crash of the server, not of the
    /// machine; several times the write throughput on slow disks.
    Commit,
}

/// Page size of a new database (an existing one keeps its own). Each edit
/// is one row appended at its room's place in `doc_update_by_challenge`, so
/// a commit of n edits from n rooms rewrites n index pages whole in the WAL
/// and fsyncs them: 1.25 pages per edit. With SQLite's default 4 KiB that
/// was ~100 MB/s of WAL at 20 000 edits/s, and the writer's share of the
/// server's CPU went to copying, checksumming and syncing pages that had
/// changed by ~50 bytes; 1 KiB pages write a quarter of that.
const PAGE_SIZE: u32 = 1024;

/// A cheap handle to the database.
#[derive(Clone)]
pub struct Store {
    pub db: Db,
    /// The database file (`None` in memory: tests of queries only).
    path: Option<std::sync::Arc<std::path::Path>>,
    durability: Durability,
    /// Users known to exist (see [`Store::user_exists`]).
    known_users: std::sync::Arc<users::KnownUsers>,
    /// Whether the writer's commits fail (see [`Store::health`]).
    writes: std::sync::Arc<writer::WriteHealth>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and migrates it,
    /// with every commit fsynced: an acknowledged edit survives a power cut.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, Durability::Fsync).await
    }

    pub async fn open_with(url: &str, durability: Durability) -> Result<Store> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Self::open_postgres(url, durability).await;
        }
        let synchronous = match durability {
            Durability::Fsync => SqliteSynchronous::Full,
            Durability::Commit => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        // Later connections never create the file: one opened after the
        // file was deleted or moved would start an empty database beside
        // the old write-ahead log, and recovery would replay that log into
        // the wrong database.
        pool.set_connect_options(options.create_if_missing(false));
        let path = pool
            .connect_options()
            .get_filename()
            .to_str()
            .filter(|f| !f.is_empty() && !f.starts_with(':') && !f.starts_with("file:"))
            .map(|f| std::sync::Arc::from(std::path::Path::new(f)));
        Ok(Store {
            db: Db::Sqlite(pool),
            path,
            durability,
            known_users: Default::default(),
            writes: Default::default(),
        })
    }

    /// Connects to Postgres and migrates it. Commits are durable as
    /// Postgres makes them (`synchronous_commit`, on by default).
    async fn open_postgres(url: &str, durability: Durability) -> Result<Store> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Store {
            db: Db::Postgres(pool),
            path: None,
            durability,
            known_users: Default::default(),
            writes: Default::default(),
        })
    }

    /// The SQLite pool (tests and tools that look inside the file).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite(pool) => Some(pool),
            Db::Postgres(_) => None,
        }
    }

    /// The Postgres pool, on Postgres.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// The cluster's name on Redis (see migrations/postgres/0002): made by
    /// the first node that asks, the same for every node of the database.
    pub async fn cluster_key(&self) -> Result<String> {
        let Some(pool) = self.pg_pool() else {
            return Ok("sqlite".to_owned());
        };
        sqlx::query(
            "insert into cluster (only_row, cluster_key, created_at) values (1, $1, $2)
             on conflict (only_row) do nothing",
        )
        .bind(random_id(12))
        .bind(timestamp())
        .execute(pool)
        .await?;
        let key: String = sqlx::query_scalar("select cluster_key from cluster")
            .fetch_one(pool)
            .await?;
        Ok(key)
    }

    /// Whether a connection to the database comes within `within`
    /// (SQLite's file is always there to try).
    pub async fn reachable(&self, within: Duration) -> bool {
        match self.pg_pool() {
            Some(pool) => matches!(
                tokio::time::timeout(within, pool.acquire()).await,
                Ok(Ok(_))
            ),
            None => true,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// The database file, if the database is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    pub(crate) fn write_health(&self) -> &std::sync::Arc<writer::WriteHealth> {
        &self.writes
    }

    /// Refuses writes once the database file is gone (deleted under the
    /// server): they would be acknowledged and lost at the next start.
    pub fn check_file(&self) -> Result<()> {
        match &self.path {
            Some(path) if !path.exists() => Err(Error::DatabaseGone),
            _ => Ok(()),
        }
    }

    /// Whether the database answers, its file is still where it was
    /// opened (a data dir deleted under a running server would otherwise
    /// go on answering from open descriptors while nothing reaches disk),
    /// and the writer's commits succeed (a full disk).
    pub async fn health(&self) -> std::result::Result<(), String> {
        let answered: std::result::Result<i32, sqlx::Error> = on_db!(self, |pool| {
            sqlx::query_scalar("select 1").fetch_one(pool).await
        });
        answered.map_err(|_| "database not answering".to_owned())?;
        if self.check_file().is_err() {
            return Err("database file is gone".into());
        }
        match self.writes.failing() {
            Some(why) => Err(format!("writes are failing: {why}")),
            None => Ok(()),
        }
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await);
    }
}

/// Now as RFC 3339 with exactly three fractional digits, UTC
/// (`2026-11-21T23:52:22.221Z`): how every `*_at` column is stored. The
/// fixed width makes text order the same as time order.
pub fn timestamp() -> String {
    timestamp_of(time::OffsetDateTime::now_utc())
}

/// [`timestamp`] of a given instant.
pub fn timestamp_of(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A random URL-safe id with `bytes` bytes of randomness.
pub fn random_id(bytes: usize) -> String {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
