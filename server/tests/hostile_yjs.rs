//! Hostile Yjs input through a real server (issue 16; the attacks of
//! ../shared/research/hardening.md D1, D2, D3, D5, D8): each one is refused
//! with a clear reply, the server and the room live on, nothing
//! acknowledged is lost.

mod common;

use common::{Client, TestServer};
use duet::challenges::doc;
use serde_json::{json, Value};

/// A lib0 variable-length number.
fn vu(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn vs(s: &str) -> Vec<u8> {
    let mut out = vu(s.len() as u64);
    out.extend_from_slice(s.as_bytes());
    out
}

/// The payload of a server push frame (kind 0).
fn push_payload(frame: &[u8]) -> &[u8] {
    &frame[4 + frame[1..4].iter().map(|&n| n as usize).sum::<usize>()..]
}

struct Room {
    server: TestServer,
    token: String,
    topic: String,
}

async fn room_with(tweak: impl FnOnce(&mut duet::config::Config)) -> Room {
    let server = TestServer::start_with(tweak).await;
    let (token, _) = server.sign_in("Ann").await;
    let id = server.create_challenge(&token).await;
    Room {
        server,
        token,
        topic: format!("challenges:{id}"),
    }
}

async fn room() -> Room {
    room_with(|_| {}).await
}

impl Room {
    /// A member that joined and synced an empty local document.
    async fn yjs_member(&self, name: &str) -> (Client, String, yrs::Doc) {
        let (token, _) = self.server.sign_in(name).await;
        let mut c = self.server.connect(&token).await;
        let (join_ref, reply) = c.join(&self.topic, json!({})).await;
        assert_eq!(reply["status"], "ok");
        let local = doc::new_doc();
        let step1 = doc::sync_step1(&doc::state_vector(&local));
        c.push_binary(&join_ref, &self.topic, "yjs_sync", &step1)
            .await;
        let frame = c.expect_binary(|f| f[0] == 0).await;
        let doc::YMessage::SyncStep2(state) = doc::decode_message(push_payload(&frame)).unwrap()
        else {
            panic!("sync step 2 expected")
        };
        doc::apply_update(&local, &state).unwrap();
        (c, join_ref, local)
    }

    /// A member that speaks only `response:update`.
    async fn plain_member(&self) -> (Client, String) {
        let mut c = self.server.connect(&self.token).await;
        let (join_ref, reply) = c.join(&self.topic, json!({})).await;
        assert_eq!(reply["status"], "ok");
        (c, join_ref)
    }

    /// Pushes a y-protocols message as `yjs`; the reply's payload.
    async fn yjs(&self, c: &mut Client, join_ref: &str, message: &[u8]) -> Value {
        let r = c.push_binary(join_ref, &self.topic, "yjs", message).await;
        c.reply(&r).await[4].clone()
    }

    async fn text_edit(&self, c: &mut Client, join_ref: &str, text: &str) -> Value {
        let r = c
            .push(
                Some(join_ref),
                &self.topic,
                "response:update",
                json!({ "response": text }),
            )
            .await;
        c.reply(&r).await[4].clone()
    }

    async fn answer(&self) -> String {
        let id = self.topic.trim_start_matches("challenges:");
        let c = self.server.get_challenge(&self.token, id).await;
        c["response"].as_str().unwrap().to_owned()
    }
}

fn refused(reply: &Value, reason: &str) {
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["response"]["reason"], reason, "{reply}");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// D1: a 10-byte state vector declaring 2^31 clients made yrs reserve (and
/// the kernel back) gigabytes; an update declaring as many, too.
#[tokio::test]
async fn declared_counts_beyond_the_message_are_refused_without_allocating() {
    let room = room().await;
    let (mut c, join_ref, _) = room.yjs_member("Bomb").await;
    let before = rss_kib();
    let mut sv = vec![0, 0];
    sv.extend(vu(7));
    sv.extend([0x80, 0x80, 0x80, 0x80, 0x08, 0x0b, 0x01]);
    let r = c.push_binary(&join_ref, &room.topic, "yjs_sync", &sv).await;
    refused(&c.reply(&r).await[4], "invalid update");
    let mut update = vec![0x80, 0x80, 0x80, 0x80, 0x08];
    update.extend([0x01, 0x02, 0x03, 0x00]);
    refused(
        &room
            .yjs(&mut c, &join_ref, &doc::sync_update(&update))
            .await,
        "invalid update",
    );
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 200 << 10, "RSS grew by {grown} KiB");
    // The member goes on editing.
    let local = doc::new_doc();
    let u = doc::replace_text(&local, "still here").unwrap();
    assert_eq!(
        room.yjs(&mut c, &join_ref, &doc::sync_update(&u)).await["status"],
        "ok"
    );
    assert_eq!(room.answer().await, "still here");
}

/// D2: 8 000 nested maps, then the deletion of the outermost, overflowed
/// the stack and aborted the process (and the stored nest aborted it again
/// at every start). Other roots and non-text content are refused too.
#[tokio::test]
async fn nested_types_and_other_roots_are_refused_and_the_server_lives() {
    let room = room().await;
    let (mut c, join_ref, _) = room.yjs_member("Nest").await;
    let (mut other, other_ref) = room.plain_member().await;
    for root in ["nest", "response"] {
        let mut items = vec![0x27];
        items.extend(vu(1));
        items.extend(vs(root));
        items.extend(vs("a"));
        items.extend(vu(1));
        for k in 1..8000u64 {
            items.push(0x27);
            items.extend(vu(0));
            items.extend(vu(7));
            items.extend(vu(k - 1));
            items.extend(vs("a"));
            items.extend(vu(1));
        }
        let mut nest = vu(1);
        nest.extend(vu(8000));
        nest.extend(vu(7));
        nest.extend(vu(0));
        nest.extend(items);
        nest.extend(vu(0));
        refused(
            &room.yjs(&mut c, &join_ref, &doc::sync_update(&nest)).await,
            "invalid update",
        );
    }
    // The deletion of the outermost map, which alone aborted a restarted server.
    let mut delete = vec![0, 1];
    delete.extend(vu(7));
    delete.extend(vu(1));
    delete.extend(vu(0));
    delete.extend(vu(1));
    // It names what the room does not have.
    refused(
        &room
            .yjs(&mut c, &join_ref, &doc::sync_update(&delete))
            .await,
        "out of sync",
    );
    assert_eq!(
        room.text_edit(&mut other, &other_ref, "alive").await["status"],
        "ok"
    );
    assert_eq!(room.answer().await, "alive");
}

/// D8: an update whose dependencies never arrive was acknowledged, stored
/// and held pending for good (and invisible in the text).
#[tokio::test]
async fn updates_with_missing_dependencies_are_refused_and_not_stored() {
    let room = room().await;
    let (mut c, join_ref, _) = room.yjs_member("Gap").await;
    let source = doc::new_doc();
    let _first = doc::replace_text(&source, "abc").unwrap();
    let second = doc::replace_text(&source, "abcdef").unwrap();
    refused(
        &room
            .yjs(&mut c, &join_ref, &doc::sync_update(&second))
            .await,
        "out of sync",
    );
    // Nothing pending: a fresh joiner's sync holds no struct of client 1.
    let (_, _, fresh) = room.yjs_member("Fresh").await;
    assert_eq!(doc::text(&fresh), "");
    assert!(doc::encode_state(&fresh).len() <= 2);
}

/// D8: a single update, a room's document and an awareness state have
/// size caps; a joiner never gets a frame over the frame limit.
#[tokio::test]
async fn oversized_updates_documents_and_awareness_are_refused() {
    let room = room_with(|c| {
        c.max_update_bytes = 20 << 10;
        c.max_doc_bytes = Some(40 << 10);
        c.max_awareness_bytes = 1024;
    })
    .await;
    let (mut c, join_ref, local) = room.yjs_member("Big").await;
    let big = doc::replace_text(&doc::new_doc(), &"x".repeat(30 << 10)).unwrap();
    refused(
        &room.yjs(&mut c, &join_ref, &doc::sync_update(&big)).await,
        "update too large",
    );
    let mut typed = String::new();
    let mut last = json!(null);
    for _ in 0..4 {
        typed.push_str(&"y".repeat(15 << 10));
        let u = doc::replace_text(&local, &typed).unwrap();
        last = room.yjs(&mut c, &join_ref, &doc::sync_update(&u)).await;
        if last["status"] != "ok" {
            break;
        }
    }
    refused(&last, "document too large");
    assert!(room.answer().await.len() <= 40 << 10);
    let (mut plain, plain_ref) = room.plain_member().await;
    refused(
        &room
            .text_edit(&mut plain, &plain_ref, &"z".repeat(50 << 10))
            .await,
        "document too large",
    );
    let state = format!(r#"{{"user":{{"name":"{}"}}}}"#, "n".repeat(2000));
    let aw = doc::awareness_message([(5, 1, state.as_str().into())]);
    refused(
        &room.yjs(&mut c, &join_ref, &aw).await,
        "awareness state too large",
    );
}

/// Risk 5: a member cannot move, relabel or remove another member's
/// cursor, and a colour goes into a style attribute only if it is one.
#[tokio::test]
async fn awareness_is_tied_to_its_sender_and_colours_are_colours() {
    let room = room().await;
    let (mut ann, ann_ref, _) = room.yjs_member("Ann").await;
    let (mut eve, eve_ref, _) = room.yjs_member("Eve").await;
    let mine = r##"{"user":{"name":"Ann","color":"#4363d8"}}"##;
    let aw = doc::awareness_message([(42, 1, mine.into())]);
    assert_eq!(room.yjs(&mut ann, &ann_ref, &aw).await["status"], "ok");
    // Eve receives Ann's state.
    let relayed = eve.expect_binary(|f| f[0] == 2).await;
    assert!(String::from_utf8_lossy(&relayed).contains("Ann"));
    let spoof = doc::awareness_message([(42, 7, r##"{"user":{"name":"Eve"}}"##.into())]);
    assert_eq!(room.yjs(&mut eve, &eve_ref, &spoof).await["status"], "ok");
    let css = doc::awareness_message([(
        43,
        1,
        r#"{"user":{"color":"red; background:url(//evil.example/x)"}}"#.into(),
    )]);
    refused(
        &room.yjs(&mut eve, &eve_ref, &css).await,
        "invalid awareness colour",
    );
    // A new joiner sees Ann's cursor as Ann left it.
    let (mut late, late_ref, _) = room.yjs_member("Late").await;
    let r = late.push_binary(&late_ref, &room.topic, "yjs", &[3]).await;
    let states = late
        .expect_binary(|f| f[0] == 0 && push_payload(f)[0] == 1)
        .await;
    late.reply(&r).await;
    let doc::YMessage::Awareness(update) = doc::decode_message(push_payload(&states)).unwrap()
    else {
        panic!("awareness expected")
    };
    let entry = &update.clients[&yrs::ClientID::new(42)];
    assert_eq!((entry.clock, &*entry.json), (1, mine));
}

/// D5: a failed commit left the update in the room's document; later edits
/// built on it were acknowledged and stored, and a crash then lost them
/// (their dependency never reached the log). Now the room reloads from its
/// log and asks its Yjs members for what the log lacks: the log alone, as a
/// restart after a crash would read it, holds every acknowledged edit.
#[tokio::test]
async fn a_failed_commit_loses_no_acknowledged_edit() {
    if !common::on_sqlite("a_failed_commit_loses_no_acknowledged_edit") {
        return;
    }
    let room = room().await;
    let (mut ann, ann_ref, local) = room.yjs_member("Ann").await;
    let (mut bob, bob_ref) = room.plain_member().await;
    let u1 = doc::replace_text(&local, "hello").unwrap();
    assert_eq!(
        room.yjs(&mut ann, &ann_ref, &doc::sync_update(&u1)).await["status"],
        "ok"
    );
    let db = room.server.dir.path().join("duet.db");
    let away = room.server.dir.path().join("duet.db.away");
    std::fs::rename(&db, &away).unwrap();
    let u2 = doc::replace_text(&local, "hello world").unwrap();
    refused(
        &room.yjs(&mut ann, &ann_ref, &doc::sync_update(&u2)).await,
        "not saved",
    );
    let health = reqwest::get(room.server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 503);
    std::fs::rename(&away, &db).unwrap();
    // The room reloaded and asks Ann for what it lacks (a sync step 1), as
    // y-websocket's client answers it: with a sync step 2. (The room may
    // have asked while the file was still away: then it asks again.)
    let mut answered = false;
    for _ in 0..5 {
        let ask = ann
            .expect_binary(|f| {
                f[0] == 0
                    && doc::decode_message(push_payload(f))
                        .is_ok_and(|m| matches!(m, doc::YMessage::SyncStep1(_)))
            })
            .await;
        let doc::YMessage::SyncStep1(sv) = doc::decode_message(push_payload(&ask)).unwrap() else {
            unreachable!()
        };
        let step2 = doc::sync_step2(&doc::diff(&local, &sv));
        if room.yjs(&mut ann, &ann_ref, &step2).await["status"] == "ok" {
            answered = true;
            break;
        }
    }
    assert!(answered, "the room took back what failed");
    let u3 = doc::replace_text(&local, "hello world!").unwrap();
    assert_eq!(
        room.yjs(&mut ann, &ann_ref, &doc::sync_update(&u3)).await["status"],
        "ok"
    );
    assert_eq!(
        room.text_edit(&mut bob, &bob_ref, "hello world!?").await["status"],
        "ok"
    );
    // What a restart would read: the log alone.
    let store = duet::store::Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let id = room.topic.trim_start_matches("challenges:");
    let stored = store
        .load_doc(id, duet::store::docs::DocKind::Answer)
        .await
        .unwrap();
    let loaded = doc::load(stored.snapshot.as_deref(), &stored.tail);
    assert_eq!(doc::text(&loaded.doc), "hello world!?");
    assert_eq!(loaded.skipped, 0);
    assert_eq!(room.answer().await, "hello world!?");
}
