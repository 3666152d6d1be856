//! The writer against real databases (SQLite, and Postgres when the suite
//! has one: see `store::testing`): the WAL starts over under load, a failed
//! commit stops its room's writes until the room resumes, refusals keep
//! the database's code, and each document's updates are numbered.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::Store;

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Store,
    writer: DocWriter,
    stop: CancellationToken,
    task: WriterTask,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    on(store, dir, db).await
}

/// A fixture on `store` (whatever its backend).
async fn on(store: Store, dir: tempfile::TempDir, db: std::path::PathBuf) -> Fixture {
    let hist = crate::telemetry::latency_histogram();
    let stop = CancellationToken::new();
    let (writer, task) = DocWriter::spawn(store.clone(), hist, stop.clone())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        db,
        store,
        writer,
        stop,
        task,
    }
}

async fn challenge(store: &Store) -> Arc<str> {
    let user = store.create_user("Log").await.unwrap();
    let new = crate::challenges::model::NewChallenge {
        title: "log".into(),
        prompt: String::new(),
        language: "python".into(),
    };
    store
        .create_challenge(&user.id, &new)
        .await
        .unwrap()
        .id
        .into()
}

/// Appends `update` for `challenge_id`; the writer's answer.
async fn append(writer: &DocWriter, challenge_id: &Arc<str>, update: Vec<u8>) -> Result<Written> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    writer
        .send(WriteOp::Append {
            challenge_id: challenge_id.clone(),
            doc: crate::store::docs::DocKind::Answer,
            change: Default::default(),
            user_id: None,
            update,
            text: None,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })
        .await
        .unwrap();
    rx.await.unwrap()
}

/// Under a steady stream of commits the WAL must start over (after
/// each checkpoint and the writer's catch-up), not grow without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_steady_stream_of_commits() {
    let f = fixture().await;
    let challenge = challenge(&f.store).await;
    // One edit per commit, each filling a page of its own: without the
    // WAL starting over, its file holds at least one frame per edit.
    let started = Instant::now();
    let mut edits = 0usize;
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let update = vec![(edits % 251) as u8; 4000];
        assert!(
            append(&f.writer, &challenge, update).await.is_ok(),
            "edit {edits}"
        );
        edits += 1;
    }
    let wal = std::fs::metadata(f.db.with_extension("db-wal"))
        .unwrap()
        .len();
    // Each edit writes its four overflow pages and its index page: a WAL
    // that never starts over holds five frames per edit. Started over now
    // and then, it holds what came since (on a busy machine the catch-up
    // lags, so only a clear margin is asserted).
    let frame = 1024 + 24;
    let never_restarted = edits as u64 * 5 * frame;
    assert!(edits > 100, "only {edits} edits committed in 1.5 s");
    assert!(
        wal < never_restarted * 3 / 5,
        "the WAL grew to {wal} bytes for {edits} edits of five frames each ({never_restarted} if it never started over)"
    );
    f.stop.cancel();
    f.task.finished().await;
    let stored = f
        .store
        .load_doc(&challenge, crate::store::docs::DocKind::Answer)
        .await
        .unwrap();
    assert_eq!(
        stored.tail.len(),
        edits,
        "every committed edit is in the log"
    );
}

/// A failed commit (here: the database file renamed away, as a data dir
/// deleted under the server) stops its room's writes: what the room queues
/// next may build on what failed, so it is refused until the room resumes
/// (which it does before it reloads its document). `/healthz` says so
/// meanwhile, and a probe write clears it once writes work again.
#[tokio::test]
async fn a_failed_commit_stops_the_rooms_writes_until_it_resumes() {
    let f = fixture().await;
    let (a, b) = (challenge(&f.store).await, challenge(&f.store).await);
    assert!(append(&f.writer, &a, vec![1]).await.is_ok());
    let away = f.db.with_extension("away");
    std::fs::rename(&f.db, &away).unwrap();
    let failed = append(&f.writer, &a, vec![2]).await;
    assert!(matches!(failed, Err(Error::DatabaseGone)), "{failed:?}");
    assert!(f.store.health().await.is_err());
    std::fs::rename(&away, &f.db).unwrap();
    // The room is stopped; another room is not.
    let refused = append(&f.writer, &a, vec![3]).await;
    assert!(matches!(refused, Err(Error::AfterFailure)), "{refused:?}");
    assert!(append(&f.writer, &b, vec![4]).await.is_ok());
    assert!(f.store.health().await.is_ok(), "a commit worked again");
    f.writer
        .resume(a.clone(), crate::store::docs::DocKind::Answer)
        .await
        .unwrap();
    assert!(append(&f.writer, &a, vec![5]).await.is_ok());
    let log = f
        .store
        .load_doc(&a, crate::store::docs::DocKind::Answer)
        .await
        .unwrap()
        .tail;
    assert_eq!(log, vec![vec![1], vec![5]], "only what was acknowledged");
    f.stop.cancel();
    f.task.finished().await;
}

/// Every backend of the suite, each with a writer.
async fn fixtures() -> Vec<(&'static str, Fixture)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for (name, store) in crate::store::testing::stores(dir.path()).await {
        let db = dir.path().join("test.db");
        out.push((name, on(store, tempfile::tempdir().unwrap(), db).await));
    }
    std::mem::forget(dir); // the SQLite file lives as long as the test
    out
}

/// A commit the database refuses (a foreign key: no such challenge) keeps
/// the database's code (SQLite's extended code, Postgres's SQLSTATE), stops
/// that room's writes, not another's, until it resumes.
#[tokio::test]
async fn a_refused_commit_keeps_the_databases_code_and_stops_its_room() {
    for (backend, f) in fixtures().await {
        let ghost: Arc<str> = Arc::from("no such challenge");
        let failed = append(&f.writer, &ghost, vec![1]).await;
        let want = if backend == "sqlite" { 787 } else { 23503 };
        match failed {
            // SQLITE_CONSTRAINT_FOREIGNKEY / foreign_key_violation
            Err(Error::CommitFailed { code, .. }) => assert_eq!(code, want, "{backend}"),
            other => panic!("{backend}: {other:?}"),
        }
        assert!(
            f.store.health().await.is_err(),
            "{backend}: failing edits are unhealthy"
        );
        let refused = append(&f.writer, &ghost, vec![2]).await;
        assert!(
            matches!(refused, Err(Error::AfterFailure)),
            "{backend}: {refused:?}"
        );
        let other = challenge(&f.store).await;
        assert!(
            append(&f.writer, &other, vec![3]).await.is_ok(),
            "{backend}"
        );
        assert!(f.store.health().await.is_ok(), "{backend}");
        f.writer
            .resume(ghost.clone(), crate::store::docs::DocKind::Answer)
            .await
            .unwrap();
        let again = append(&f.writer, &ghost, vec![4]).await;
        assert!(
            matches!(again, Err(Error::CommitFailed { .. })),
            "{backend}: tried again: {again:?}"
        );
        f.stop.cancel();
        f.task.finished().await;
    }
}

/// Each document's updates are numbered in commit order, and the numbers
/// are what the log reads back (Postgres: 1, 2, 3 per document; SQLite:
/// the rows' ids, increasing).
#[tokio::test]
async fn updates_are_numbered_per_document_in_commit_order() {
    use crate::store::docs::DocKind;
    for (backend, f) in fixtures().await {
        let (a, b) = (challenge(&f.store).await, challenge(&f.store).await);
        let mut got = Vec::new();
        for (room, byte) in [(&a, 1u8), (&a, 2), (&b, 3), (&a, 4)] {
            got.push((
                room.clone(),
                append(&f.writer, room, vec![byte]).await.unwrap().seq,
            ));
        }
        let of = |room: &Arc<str>| -> Vec<i64> {
            got.iter()
                .filter(|(r, _)| r == room)
                .map(|(_, s)| *s)
                .collect()
        };
        if backend == "postgres" {
            assert_eq!(of(&a), [1, 2, 3]);
            assert_eq!(of(&b), [1]);
        } else {
            assert!(of(&a).windows(2).all(|w| w[0] < w[1]), "{got:?}");
        }
        let stored = f.store.load_doc_after(&a, DocKind::Answer).await.unwrap().1;
        let numbers: Vec<i64> = stored.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, of(&a), "{backend}");
        f.stop.cancel();
        f.task.finished().await;
    }
}
