//! The writer against a real SQLite file: the WAL starts over under load,
//! and a failed commit stops its room's writes until the room resumes.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::Store;
use crate::telemetry::Histogram;

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
    let hist = Arc::new(Histogram::new(crate::telemetry::LATENCY_BUCKETS));
    let stop = CancellationToken::new();
    let (writer, task) = DocWriter::spawn(store.clone(), hist, stop.clone()).unwrap();
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
async fn append(writer: &DocWriter, challenge_id: &Arc<str>, update: Vec<u8>) -> Result<()> {
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
    let frame = 1024 + 24;
    assert!(edits > 100, "only {edits} edits committed in 1.5 s");
    assert!(
        wal < (edits as u64 * 4 * frame) / 2,
        "the WAL grew to {wal} bytes for {edits} edits of four pages each"
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

/// A commit that SQLite refuses keeps SQLite's code in the error.
#[tokio::test]
async fn a_refused_commit_keeps_sqlites_code() {
    let f = fixture().await;
    let failed = append(&f.writer, &Arc::from("no such challenge"), vec![1]).await;
    match failed {
        // SQLITE_CONSTRAINT_FOREIGNKEY
        Err(Error::CommitFailed { code, .. }) => assert_eq!(code, 787),
        other => panic!("{other:?}"),
    }
    f.stop.cancel();
    f.task.finished().await;
}
