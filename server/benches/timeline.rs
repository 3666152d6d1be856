//! Playback's benchmark (issue 20): one-hour sessions of 5 000 and 20 000
//! edits (a person typing and deleting, timestamps spread over the hour,
//! a checkpoint every 500 updates as the rooms write them), then seeks to
//! random instants as `GET /api/challenges/:id/text?at=` does them (the
//! checkpoint before the instant and its tail, applied): p50 and p99 of a
//! seek, the export file's size, and the storage an hour takes.
//! Run with `make bench` (or `cargo bench -p duet --bench timeline`).

use std::time::{Duration, Instant};

use duet::challenges::doc;
use duet::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Updates between two checkpoints (the rooms' `DUET_SNAPSHOT_EVERY`).
const CHECKPOINT_EVERY: usize = 500;
const SEEKS: usize = 200;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("playback: seek = text at a random instant of a one-hour session");
    println!("| edits | seek p50 | seek p99 | export | storage per hour |");
    println!("|---|---|---|---|---|");
    for edits in [5_000, 20_000] {
        let row = rt.block_on(session(edits));
        println!(
            "| {edits} | {:.1} ms | {:.1} ms | {:.2} MB | {:.2} MB |",
            ms(row.p50),
            ms(row.p99),
            row.export_bytes as f64 / 1e6,
            row.db_bytes as f64 / 1e6
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    p50: Duration,
    p99: Duration,
    export_bytes: usize,
    db_bytes: u64,
}

/// The timestamp `i` of `n` edits spread over an hour.
fn at(i: usize, n: usize) -> String {
    let start = time::macros::datetime!(2026-12-06 09:00:00 UTC);
    let t = start + time::Duration::milliseconds((i as i64 * 3_600_000) / n as i64);
    duet::store::timestamp_of(t)
}

async fn session(n: usize) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("store");
    let user = store.create_user("Typist").await.expect("user");
    let new = duet::challenges::model::NewChallenge {
        title: "Hour".into(),
        prompt: String::new(),
        language: "python".into(),
    };
    let id = store
        .create_challenge(&user.id, &new)
        .await
        .expect("challenge")
        .id;
    write_session(&store, &id, &user.id, n).await;
    let mut rng = StdRng::seed_from_u64(n as u64);
    let mut seeks = Vec::with_capacity(SEEKS);
    for _ in 0..SEEKS {
        let instant = at(rng.gen_range(0..n), n);
        let started = Instant::now();
        let log = store.answer_until(&id, &instant).await.expect("log");
        let loaded = doc::load(log.checkpoint.as_deref(), &log.tail);
        std::hint::black_box(doc::text(&loaded.doc));
        seeks.push(started.elapsed());
    }
    seeks.sort();
    let updates = store
        .updates(&id, duet::store::docs::DocKind::Answer)
        .await
        .expect("updates");
    let export_bytes = serde_json::to_vec(&updates).expect("json").len();
    store.close().await;
    let db_bytes = ["bench.db", "bench.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    Row {
        p50: seeks[SEEKS / 2],
        p99: seeks[SEEKS * 99 / 100],
        export_bytes,
        db_bytes,
    }
}

/// `n` edits of a person typing code (mostly one character, some
/// deletions, some pasted lines), stored as the writer stores them, with a
/// checkpoint every [`CHECKPOINT_EVERY`].
async fn write_session(store: &Store, id: &str, user: &str, n: usize) {
    let typist = doc::new_doc();
    let mut rng = StdRng::seed_from_u64(7);
    let mut text = String::new();
    let mut tx = store
        .sqlite_pool()
        .expect("SQLite")
        .begin()
        .await
        .expect("tx");
    for i in 0..n {
        let len = text.chars().count();
        let at_char = if len == 0 {
            0
        } else {
            rng.gen_range(len.saturating_sub(40)..=len)
        };
        let mut chars: Vec<char> = text.chars().collect();
        match rng.gen_range(0..10) {
            0 if len > 0 => {
                chars.remove(at_char.min(len - 1));
            }
            1 => chars
                .splice(at_char..at_char, "    return total\n".chars())
                .for_each(drop),
            _ => chars.insert(
                at_char,
                ['a', 'e', 'x', ' ', '(', ')', '\n'][rng.gen_range(0..7)],
            ),
        }
        text = chars.into_iter().collect();
        let Some(update) = doc::replace_text(&typist, &text) else {
            continue;
        };
        let row: (i64,) = sqlx::query_as(
            "insert into doc_update (challenge_id, doc, user_id, update_v1, inserted, deleted, created_at)
             values (?, 0, ?, ?, 1, 0, ?) returning doc_update_id",
        )
        .bind(id)
        .bind(user)
        .bind(&update)
        .bind(at(i, n))
        .fetch_one(&mut *tx)
        .await
        .expect("insert");
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            sqlx::query(
                "insert into doc_checkpoint (challenge_id, doc, last_update_id, state_v1, created_at)
                 values (?, 0, ?, ?, ?)",
            )
            .bind(id)
            .bind(row.0)
            .bind(doc::encode_state(&typist))
            .bind(at(i, n))
            .execute(&mut *tx)
            .await
            .expect("checkpoint");
        }
    }
    tx.commit().await.expect("commit");
}
