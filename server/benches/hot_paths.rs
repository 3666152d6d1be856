//! Micro-benchmarks of the hot paths: frame decode/encode (JSON and
//! binary), encode-once broadcast fan-out, presence diffs for rooms of
//! 4 / 100 / 1 000, yrs update apply + encode, and group commit.
//! Run with `make bench` (or `cargo bench -p duet`).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::json;

use duet::challenges::doc;
use duet::channels::message::{Broadcast, Payload, Reply, Status};
use duet::channels::presence::Presence;
use duet::channels::pubsub::{LocalPubSub, PubSub, Subscriber};
use duet::channels::serializer::{decode, encode_broadcast, encode_reply, Frame};
use duet::channels::{Metrics, Outbound};

fn text_256() -> String {
    "x".repeat(256)
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let json_frame = Frame::Text(Bytes::from(
        json!(["3", "17", "challenges:AbCdEfGhIjKlMnOp", "response:update", {"response": text_256()}]).to_string(),
    ));
    g.bench_function("decode_json_256B", |b| {
        b.iter(|| decode(black_box(&json_frame)).unwrap())
    });
    let mut bin = vec![0u8, 1, 2, 26, 3];
    bin.extend_from_slice(b"317challenges:AbCdEfGhIjKlMnOpyjs");
    bin.extend_from_slice(&[7u8; 256]);
    let bin_frame = Frame::Binary(Bytes::from(bin));
    g.bench_function("decode_binary_256B", |b| {
        b.iter(|| decode(black_box(&bin_frame)).unwrap())
    });
    let reply = Reply {
        join_ref: Some("3".into()),
        msg_ref: Some("17".into()),
        topic: "challenges:AbCdEfGhIjKlMnOp".into(),
        status: Status::Ok,
        payload: Payload::Json(json!({})),
    };
    g.bench_function("encode_json_reply", |b| {
        b.iter(|| encode_reply(black_box(&reply)).unwrap())
    });
    let bcast = Broadcast {
        topic: "challenges:AbCdEfGhIjKlMnOp".into(),
        event: "yjs".into(),
        payload: Payload::Binary(Bytes::from(vec![1u8; 256])),
    };
    g.bench_function("encode_binary_broadcast_256B", |b| {
        b.iter(|| encode_broadcast(black_box(&bcast)).unwrap())
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_fanout");
    for members in [4usize, 100, 1000] {
        let pubsub = LocalPubSub::new();
        let metrics = Arc::new(Metrics::default());
        let mut receivers = Vec::new();
        for i in 0..members {
            let (outbound, rx, _closer) =
                Outbound::new(1 << 20, usize::MAX, metrics.clone(), &Default::default());
            pubsub.subscribe(
                "room",
                i as u64,
                Subscriber {
                    outbound,
                    intercepts: &[],
                    on_intercept: None,
                },
            );
            receivers.push(rx);
        }
        g.throughput(Throughput::Elements(members as u64));
        g.bench_with_input(BenchmarkId::new("json_256B", members), &members, |b, _| {
            b.iter(|| {
                pubsub.broadcast(
                    Broadcast {
                        topic: "room".into(),
                        event: "response:updated".into(),
                        payload: Payload::Json(json!({"response": text_256()})),
                    },
                    Some(0),
                );
                for rx in receivers.iter_mut() {
                    while rx.try_recv().is_some() {}
                }
            })
        });
    }
    g.finish();
}

fn presence(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("presence_join_diff");
    for members in [4usize, 100, 1000] {
        let p = Presence::new(Arc::new(LocalPubSub::new()), 1, Default::default());
        for i in 0..members {
            let meta = json!({"user_id": format!("u{i}"), "first_name": "N", "typing": false})
                .as_object()
                .unwrap()
                .clone();
            p.track("room", &format!("u{i}"), p.owner(i as u64), meta);
        }
        p.take_diff("room");
        let mut next = members as u64;
        g.bench_with_input(
            BenchmarkId::new("track_list_diff_untrack", members),
            &members,
            |b, _| {
                b.iter(|| {
                    next += 1;
                    let owner = p.owner(next);
                    let meta = json!({"user_id": "new", "first_name": "N", "typing": false})
                        .as_object()
                        .unwrap()
                        .clone();
                    p.track("room", "new", owner, meta);
                    black_box(p.list("room"));
                    black_box(p.take_diff("room"));
                    p.untrack_owner("room", owner);
                    black_box(p.take_diff("room"));
                })
            },
        );
    }
    g.finish();
}

fn yrs_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("yrs");
    let source = doc::new_doc();
    let mut updates = Vec::new();
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!("line {i}\n"));
        updates.push(doc::replace_text(&source, &text).unwrap());
    }
    g.bench_function("apply_200_updates_and_encode_state", |b| {
        b.iter_batched(
            doc::new_doc,
            |d| {
                for u in &updates {
                    doc::apply_update(&d, u).unwrap();
                }
                black_box(doc::encode_state(&d))
            },
            BatchSize::SmallInput,
        )
    });
    let target = doc::new_doc();
    let mut n = 0u64;
    g.bench_function("replace_text_256B_edit", |b| {
        b.iter(|| {
            n += 1;
            black_box(doc::replace_text(&target, &format!("{n}{}", text_256())))
        })
    });
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (writer, challenge_id) = rt.block_on(async {
        let store = duet::store::Store::open(&url).await.unwrap();
        let user = store.create_user("Bench").await.unwrap();
        let new = duet::challenges::model::NewChallenge {
            title: "b".into(),
            prompt: String::new(),
            language: "python".into(),
        };
        let ch = store.create_challenge(&user.id, &new).await.unwrap();
        let hist = duet::telemetry::latency_histogram();
        let (writer, _task) =
            duet::store::writer::DocWriter::spawn(store, hist, Default::default())
                .await
                .unwrap();
        (writer, Arc::<str>::from(ch.id))
    });
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(20);
    for batch in [1usize, 100] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(
            BenchmarkId::new("durable_edits", batch),
            &batch,
            |b, &batch| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut waits = Vec::with_capacity(batch);
                        for _ in 0..batch {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            let op = duet::store::writer::WriteOp::Append {
                                challenge_id: challenge_id.clone(),
                                doc: duet::store::docs::DocKind::Answer,
                                change: Default::default(),
                                user_id: None,
                                update: vec![0u8; 64],
                                text: Some(duet::store::writer::Stamped {
                                    text: Arc::from("text"),
                                    at: Arc::from("2026-12-02T00:00:00.000Z"),
                                }),
                                done: Box::new(move |r| {
                                    let _ = tx.send(r.is_ok());
                                }),
                            };
                            writer.send(op).await.unwrap();
                            waits.push(rx);
                        }
                        for w in waits {
                            assert!(w.await.unwrap());
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, codec, fanout, presence, yrs_updates, group_commit);
criterion_main!(benches);
