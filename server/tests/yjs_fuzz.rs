//! A seeded, bounded fuzz of the whole Yjs path (issue 16 D3): mutated
//! updates go through decode → check → apply → encode → persist (the
//! group-commit writer, a real SQLite file) → reload, and nothing may abort
//! the process, no input the checks let through may make yrs panic, and
//! the log reloads to exactly the document that acknowledged it. The
//! corpus (tests/corpus/yjs-updates.hex) holds every content kind Yjs
//! writes and the inputs that broke the release binary; the mutations are
//! those of ../shared/research/redteam/yfuzz.py, which found them.

use std::sync::Arc;

use duet::challenges::doc::{self, check, DocError, YMessage};
use duet::store::writer::{DocWriter, WriteOp};
use duet::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// Rounds (a fresh document and challenge each) and inputs per round:
/// about seven seconds in release on the project's 2-core machine (18 000
/// inputs, half of them reaching yrs).
const ROUNDS: usize = 60;
const INPUTS_PER_ROUND: usize = 300;

fn corpus() -> Vec<Vec<u8>> {
    let text = include_str!("corpus/yjs-updates.hex");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// Text edits of three clients that see each other's updates: seeds the
/// checks accept, so mutations reach yrs.
fn generated(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let docs: Vec<yrs::Doc> = (1..=3)
        .map(|id| {
            yrs::Doc::with_options(yrs::Options {
                client_id: yrs::ClientID::new(id * 1000 + 7),
                offset_kind: yrs::OffsetKind::Utf16,
                ..Default::default()
            })
        })
        .collect();
    let mut out = Vec::new();
    for _ in 0..60 {
        let who = rng.gen_range(0..docs.len());
        let d = &docs[who];
        let current = doc::text(d);
        let mut chars: Vec<char> = current.chars().collect();
        let at = rng.gen_range(0..=chars.len());
        if rng.gen_bool(0.3) && at < chars.len() {
            let end = (at + rng.gen_range(1..4)).min(chars.len());
            chars.drain(at..end);
        } else {
            let alphabet = ['a', 'é', '😀', '\n', ' ', 'z'];
            chars.insert(at, alphabet[rng.gen_range(0..alphabet.len())]);
        }
        let target: String = chars.into_iter().collect();
        if let Some(u) = doc::replace_text(d, &target) {
            for (i, other) in docs.iter().enumerate() {
                if i != who {
                    doc::apply_update(other, &u).expect("a generated edit applies");
                }
            }
            out.push(u);
        }
    }
    out
}

/// lib0 var uint.
fn vu(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// yfuzz.py's mutations: bit flips, special bytes, insertions, deletions,
/// splices from another seed, huge numbers.
fn mutate(seed: &[u8], seeds: &[Vec<u8>], rng: &mut StdRng) -> Vec<u8> {
    let mut b = seed.to_vec();
    let times = [1, 1, 2, 3, 8][rng.gen_range(0..5)];
    for _ in 0..times {
        let i = if b.is_empty() {
            0
        } else {
            rng.gen_range(0..b.len())
        };
        match rng.gen_range(0..6) {
            0 if !b.is_empty() => b[i] ^= 1 << rng.gen_range(0..8),
            1 if !b.is_empty() => b[i] = [0, 1, 0x7f, 0x80, 0xff, rng.gen()][rng.gen_range(0..6)],
            2 => b.insert(i, rng.gen()),
            3 if b.len() > 2 => {
                b.remove(i);
            }
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let j = rng.gen_range(0..other.len().max(1));
                b.truncate(i);
                b.extend_from_slice(other.get(j..).unwrap_or_default());
            }
            5 => {
                let huge = [1u64 << 31, (1 << 32) - 1, 1 << 53, 1 << 63, 1_000_000];
                let n = vu(huge[rng.gen_range(0..huge.len())]);
                let take = rng.gen_range(1..=n.len());
                b.splice(i..i, n[..take].iter().copied());
            }
            _ => {}
        }
    }
    b
}

async fn append(writer: &DocWriter, challenge_id: &Arc<str>, update: Vec<u8>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let op = WriteOp::Append {
        challenge_id: challenge_id.clone(),
        doc: duet::store::docs::DocKind::Answer,
        change: Default::default(),
        user_id: None,
        update,
        text: None,
        done: Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }),
    };
    writer.send(op).await.expect("writer runs");
    assert!(
        rx.await.expect("answered"),
        "an accepted update was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_updates_never_crash_and_the_log_reloads_to_the_document() {
    let mut rng = StdRng::seed_from_u64(0x5eed_2026_1206);
    let mut seeds = corpus();
    let sequence = generated(&mut rng);
    seeds.extend(sequence.iter().cloned());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("fuzz.db").display()
    ))
    .await
    .unwrap();
    let user = store.create_user("Fuzz").await.unwrap();
    let hist = duet::telemetry::latency_histogram();
    let stop = CancellationToken::new();
    let (writer, task) = DocWriter::spawn(store.clone(), hist, stop.clone())
        .await
        .unwrap();
    let mut found = Found::default();
    for _ in 0..ROUNDS {
        let new = duet::challenges::model::NewChallenge {
            title: "fuzz".into(),
            prompt: String::new(),
            language: "python".into(),
        };
        let id: Arc<str> = store
            .create_challenge(&user.id, &new)
            .await
            .unwrap()
            .id
            .into();
        let mut round = Round::default();
        for n in 0..INPUTS_PER_ROUND {
            // Every other input is the generated sequence's next edit, as
            // it is, so the document grows as a real one does and the
            // mutations (of the next edit, or of any seed) meet it.
            let next = &sequence[(n / 2) % sequence.len()];
            let input = match n % 4 {
                0 | 2 => next.clone(),
                1 => mutate(next, &seeds, &mut rng),
                _ => mutate(&seeds[rng.gen_range(0..seeds.len())], &seeds, &mut rng),
            };
            if let Some(update) = round.feed(&input, &mut found) {
                append(&writer, &id, update).await;
            }
            if n % 16 == 0 {
                let _ = doc::encode_state(&round.document);
            }
        }
        round.assert_reloads(&store, &id).await;
    }
    stop.cancel();
    task.finished().await;
    let Found { accepted, panics } = found;
    assert!(
        panics.is_empty(),
        "inputs that passed the checks and made yrs panic: {panics:?}"
    );
    eprintln!(
        "{accepted} of {} inputs reached yrs",
        ROUNDS * INPUTS_PER_ROUND
    );
    assert!(
        accepted > ROUNDS,
        "only {accepted} inputs reached yrs: the fuzz tests little"
    );
}

/// What the rounds found so far.
#[derive(Default)]
struct Found {
    /// Inputs that reached yrs and were applied.
    accepted: usize,
    /// Inputs that passed the checks and made yrs panic, in hex.
    panics: Vec<String>,
}

/// One challenge's document and the log of what was applied to it.
struct Round {
    document: yrs::Doc,
    log: Vec<Vec<u8>>,
}

impl Default for Round {
    fn default() -> Self {
        Round {
            document: doc::new_doc(),
            log: Vec::new(),
        }
    }
}

impl Round {
    /// Takes `input` as the room would (decode, check, guarded apply);
    /// returns the update to store when it was applied.
    fn feed(&mut self, input: &[u8], found: &mut Found) -> Option<Vec<u8>> {
        let Ok(YMessage::Update(update)) = doc::decode_message(&doc::sync_update(input)) else {
            return None;
        };
        check::update(&update, Some(&doc::state_vector(&self.document))).ok()?;
        match doc::apply_update(&self.document, &update) {
            Ok(()) => {
                found.accepted += 1;
                self.log.push(update.clone());
                Some(update)
            }
            Err(DocError::Panicked) => {
                found
                    .panics
                    .push(update.iter().map(|b| format!("{b:02x}")).collect());
                // As a room does: drop the document, reload the log.
                self.document = doc::load(None, &self.log).doc;
                None
            }
            Err(_) => None,
        }
    }

    /// The stored log (and a snapshot of the document) reload to the
    /// same text.
    async fn assert_reloads(&self, store: &Store, id: &str) {
        let stored = store
            .load_doc(id, duet::store::docs::DocKind::Answer)
            .await
            .unwrap();
        assert_eq!(stored.tail.len(), self.log.len());
        let reloaded = doc::load(stored.snapshot.as_deref(), &stored.tail);
        assert_eq!(reloaded.skipped, 0, "a stored update did not reload");
        assert_eq!(doc::text(&reloaded.doc), doc::text(&self.document));
        let snapshot = doc::load(Some(&doc::encode_state(&self.document)), &[]);
        assert_eq!(doc::text(&snapshot.doc), doc::text(&self.document));
    }
}
