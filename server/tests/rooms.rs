//! Challenge rooms against a real SQLite file: migrations, REST validation,
//! JWT attacks, room load/unload, compaction, group commit, Yjs sync.

mod common;

use common::TestServer;
use duet::challenges::doc;
use serde_json::{json, Value};

fn is_event(v: &Value, event: &str) -> bool {
    v[3] == json!(event)
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    let body = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .map(|v| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} missing"))
}

async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Syncs `local` as a Yjs member of `topic`: pushes sync step 1 and applies
/// the server's answer, sync step 2 (the first `yjs` push it gets back).
async fn sync_yjs(c: &mut common::Client, join_ref: &str, topic: &str, local: &yrs::Doc) {
    let step1 = doc::sync_step1(&doc::state_vector(local));
    c.push_binary(join_ref, topic, "yjs_sync", &step1).await;
    // A server push: [0, join_ref, topic and event lengths, them, payload].
    let frame = c.expect_binary(|f| f[0] == 0).await;
    let payload = &frame[4 + frame[1..4].iter().map(|&n| n as usize).sum::<usize>()..];
    let doc::YMessage::SyncStep2(state) = doc::decode_message(payload).unwrap() else {
        panic!("sync step 2 expected first, got {payload:?}")
    };
    doc::apply_update(local, &state).unwrap();
}

#[tokio::test]
async fn restart_keeps_challenges_and_text_and_compaction_keeps_it_identical() {
    let server = TestServer::start_with(|c| c.snapshot_every = 3).await;
    let (token, _) = server.sign_in("Sophie").await;
    let id = server.create_challenge(&token).await;
    let mut c = server.connect(&token).await;
    let topic = format!("challenges:{id}");
    let (jr, reply) = c.join(&topic, json!({})).await;
    assert_eq!(reply["response"]["challenge"]["id"], json!(id));
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!("line {i} é🎉\n"));
        let r = c
            .push(
                Some(&jr),
                &topic,
                "response:update",
                json!({ "response": text }),
            )
            .await;
        assert_eq!(c.reply(&r).await[4]["status"], json!("ok"));
    }
    assert_eq!(
        server.get_challenge(&token, &id).await["response"],
        json!(text)
    );
    drop(c);
    let dir = server.stop().await;
    let snapshots = common::count_rows(dir.path(), "doc_snapshot").await;
    assert_eq!(snapshots, 1, "compaction wrote a snapshot");
    let server = TestServer::start_in(dir, |_| {}).await;
    let list: Value = reqwest::Client::new()
        .get(server.url("/api/challenges"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"][0]["id"], json!(id));
    let mut c = server.connect(&token).await;
    let (_, reply) = c.join(&topic, json!({})).await;
    assert_eq!(
        reply["response"]["challenge"]["response"],
        json!(text),
        "loaded from snapshot + tail"
    );
}

#[tokio::test]
async fn rooms_load_on_join_and_unload_after_the_last_member_leaves() {
    let server = TestServer::start_with(|c| c.room_grace_ms = 50).await;
    let (token, _) = server.sign_in("Sophie").await;
    let id = server.create_challenge(&token).await;
    let topic = format!("challenges:{id}");
    assert_eq!(metric(&server, "duet_rooms_loaded").await, 0.0);
    let mut c = server.connect(&token).await;
    let (_, reply) = c.join(&topic, json!({})).await;
    assert_eq!(reply["status"], json!("ok"));
    assert_eq!(metric(&server, "duet_rooms_loaded").await, 1.0);
    let (_, reply) = c.join("challenges:nope", json!({})).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "not found"}})
    );
    drop(c);
    eventually(async || metric(&server, "duet_rooms_loaded").await == 0.0).await;
}

#[tokio::test]
async fn seed_flow_response_updated_and_typing() {
    let server = TestServer::start().await;
    let (ta, ua) = server.sign_in("Sophie").await;
    let (tb, ub) = server.sign_in("Antoin").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    let mut b = server.connect(&tb).await;
    let (ja, _) = a.join(&topic, json!({})).await;
    let state = a.expect(|v| is_event(v, "presence_state")).await;
    assert_eq!(state[4][&ua]["metas"][0]["typing"], json!(false));
    b.join(&topic, json!({})).await;
    let state = b.expect(|v| is_event(v, "presence_state")).await;
    assert!(state[4][&ua].is_object() && state[4][&ub].is_object());
    a.expect(|v| is_event(v, "presence_diff") && v[4]["joins"][&ub].is_object())
        .await;

    let r = a
        .push(
            Some(&ja),
            &topic,
            "response:update",
            json!({"response": "print(1)"}),
        )
        .await;
    assert_eq!(
        a.reply(&r).await[4],
        json!({"status": "ok", "response": {}})
    );
    for c in [&mut a, &mut b] {
        let up = c.expect(|v| is_event(v, "response:updated")).await;
        assert_eq!(up[4]["challenge"]["response"], json!("print(1)"));
        assert_eq!(up[4]["user_id"], json!(ua));
    }
    b.expect(|v| {
        is_event(v, "presence_diff") && v[4]["joins"][&ua]["metas"][0]["typing"] == json!(true)
    })
    .await;
    let r = a
        .push(
            Some(&ja),
            &topic,
            "current_participant_typing:remove",
            json!({}),
        )
        .await;
    a.reply(&r).await;
    b.expect(|v| {
        is_event(v, "presence_diff")
            && v[4]["joins"][&ua]["metas"][0]["typing"] == json!(false)
            && v[4]["joins"][&ua]["metas"][0]["phx_ref_prev"].is_string()
    })
    .await;
}

#[tokio::test]
async fn yjs_sync_relays_updates_and_refuses_invalid_ones() {
    let server = TestServer::start().await;
    let (ta, _) = server.sign_in("Sophie").await;
    let (tb, _) = server.sign_in("Antoin").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    let mut b = server.connect(&tb).await;
    let (ja, _) = a.join(&topic, json!({})).await;
    let (jb, _) = b.join(&topic, json!({})).await;

    // A client doc syncs: it gets step 2 then the server's step 1.
    let local = doc::new_doc();
    sync_yjs(&mut a, &ja, &topic, &local).await;

    // B speaks Yjs too (only Yjs members get `yjs` relays).
    let b_doc = doc::new_doc();
    sync_yjs(&mut b, &jb, &topic, &b_doc).await;

    let update = doc::replace_text(&local, "hello from yjs").unwrap();
    let msg = doc::sync_update(&update);
    let timed = metric(&server, "duet_edit_seconds_count").await;
    let r = a.push_binary(&ja, &topic, "yjs", &msg).await;
    a.reply(&r).await;
    // A Yjs edit is timed like a `response:update`, before its ack.
    assert_eq!(
        metric(&server, "duet_edit_seconds_count").await,
        timed + 1.0
    );
    let relayed = b.expect_binary(|f| f[0] == 2 && f.ends_with(&msg)).await;
    assert!(!relayed.is_empty());
    assert_eq!(
        server.get_challenge(&ta, &id).await["response"],
        json!("hello from yjs")
    );

    // Truncated update inside valid framing, and garbage: refused, nothing changes.
    let more = doc::replace_text(&local, "hello from yjs, more").unwrap();
    for bad in [
        doc::sync_update(&more[..more.len() - 4]),
        vec![0, 2, 200],
        vec![9, 9, 9],
    ] {
        let r = b.push_binary(&jb, &topic, "yjs", &bad).await;
        assert_eq!(
            b.reply(&r).await[4],
            json!({"status": "error", "response": {"reason": "invalid update"}})
        );
    }
    assert_eq!(
        server.get_challenge(&ta, &id).await["response"],
        json!("hello from yjs")
    );

    // A JSON edit reaches the Yjs members as the exact edit: one letter
    // replaced inside a word is that letter, not the word.
    let (tc, _) = server.sign_in("Camille").await;
    let mut c = server.connect(&tc).await;
    let (jc, _) = c.join(&topic, json!({})).await;
    let r = c
        .push(
            Some(&jc),
            &topic,
            "response:update",
            json!({"response": "hello from yjz"}),
        )
        .await;
    assert_eq!(c.reply(&r).await[4]["status"], json!("ok"));
    let relayed = b.expect_binary(|f| f[0] == 2).await;
    assert!(!relayed.windows(3).any(|w| w == b"yjz"), "{relayed:?}");
    assert_eq!(
        server.get_challenge(&ta, &id).await["response"],
        json!("hello from yjz")
    );
}

/// A busy Yjs room computes its text only on demand: a read right after an
/// ack still sees that edit (the read asks the room), by id and in the list.
#[tokio::test]
async fn reads_see_each_acknowledged_yjs_edit_at_once() {
    let server = TestServer::start().await;
    let (ta, _) = server.sign_in("Sophie").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    let (ja, _) = a.join(&topic, json!({})).await;
    let local = doc::new_doc();
    sync_yjs(&mut a, &ja, &topic, &local).await;
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!("line {i}\n"));
        let update = doc::replace_text(&local, &text).unwrap();
        let r = a
            .push_binary(&ja, &topic, "yjs", &doc::sync_update(&update))
            .await;
        assert_eq!(a.reply(&r).await[4]["status"], json!("ok"));
        assert_eq!(
            server.get_challenge(&ta, &id).await["response"],
            json!(text),
            "GET right after the ack of edit {i}"
        );
    }
    let list: Value = reqwest::Client::new()
        .get(server.url("/api/challenges"))
        .bearer_auth(&ta)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"][0]["response"], json!(text));
}

#[tokio::test]
async fn group_commit_puts_many_edits_in_few_transactions() {
    let server = TestServer::start_with(|c| {
        c.socket_rate = 10_000;
        c.socket_burst = 10_000;
    })
    .await;
    let mut clients = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (token, _) = server.sign_in(&format!("User{i}")).await;
        let id = server.create_challenge(&token).await;
        let mut c = server.connect(&token).await;
        let topic = format!("challenges:{id}");
        let (jr, _) = c.join(&topic, json!({})).await;
        clients.push((c, topic, jr));
        tokens.push((token, id));
    }
    let before = metric(&server, "duet_persist_seconds_count").await;
    let edits_before = metric(&server, "duet_edit_seconds_count").await;
    const EDITS: usize = 100;
    let mut refs = Vec::new();
    for n in 0..EDITS {
        for (c, topic, jr) in clients.iter_mut() {
            let r = c
                .push(
                    Some(jr),
                    topic,
                    "response:update",
                    json!({ "response": format!("edit {n}") }),
                )
                .await;
            refs.push(r);
        }
    }
    for (c, _, _) in clients.iter_mut() {
        c.expect(|v| {
            v[3] == json!("phx_reply")
                && v[4]["status"] == json!("ok")
                && v[1]
                    .as_str()
                    .is_some_and(|r| r.parse::<usize>().unwrap() == EDITS + 1)
        })
        .await;
    }
    let commits = metric(&server, "duet_persist_seconds_count").await - before;
    // Every acked edit is timed, before its ack goes out.
    let timed = metric(&server, "duet_edit_seconds_count").await - edits_before;
    assert_eq!(timed, (EDITS * 4) as f64, "edits timed");
    assert!(
        commits < (EDITS * 4) as f64,
        "{commits} transactions for {} edits",
        EDITS * 4
    );
    for (token, id) in &tokens {
        assert_eq!(
            server.get_challenge(token, id).await["response"],
            json!(format!("edit {}", EDITS - 1))
        );
    }
}

/// A legacy member's last `response:updated` is the room's latest text,
/// even when a commit is slow: the notice of a `response:update` goes out on
/// its commit, so the throttled notice of a Yjs edit made meanwhile must not
/// overtake it (it did: the client was left showing the older text).
#[tokio::test]
async fn response_updated_notices_keep_commit_order_when_a_commit_is_slow() {
    if !common::on_sqlite("response_updated_notices_keep_commit_order_when_a_commit_is_slow") {
        return;
    }
    let server = TestServer::start().await;
    let (ta, _) = server.sign_in("Sophie").await;
    let (tb, _) = server.sign_in("Antoin").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    let (ja, _) = a.join(&topic, json!({})).await;
    let r = update_response(&mut a, &ja, &topic, "hello").await;
    assert_eq!(a.reply(&r).await[4]["status"], json!("ok"));

    // B speaks Yjs and has "hello".
    let mut b = server.connect(&tb).await;
    let (jb, _) = b.join(&topic, json!({})).await;
    let b_doc = doc::new_doc();
    sync_yjs(&mut b, &jb, &topic, &b_doc).await;
    assert_eq!(doc::text(&b_doc), "hello");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;

    // Another connection holds the database's write lock: commits wait.
    let mut lock = hold_write_lock(&server).await;
    let r = update_response(&mut a, &ja, &topic, "hello world").await;
    // The same text again changes nothing, but its ack too means "on disk".
    let again = update_response(&mut a, &ja, &topic, "hello world").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // B did not see " world" yet: it puts ">> " in front of "hello".
    let update = doc::replace_text(&b_doc, ">> hello").unwrap();
    b.push_binary(&jb, &topic, "yjs", &doc::sync_update(&update))
        .await;
    // Long enough for the Yjs edit's throttled notice to be due.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();

    // Everything A receives from now on, in order.
    let seen = until_quiet(&mut a).await;
    let replies: Vec<&Value> = seen
        .iter()
        .filter(|v| is_event(v, "phx_reply"))
        .map(|v| &v[1])
        .collect();
    assert_eq!(
        replies,
        [&json!(r), &json!(again)],
        "acks in order: {seen:?}"
    );
    assert!(seen
        .iter()
        .filter(|v| is_event(v, "phx_reply"))
        .all(|v| v[4]["status"] == json!("ok")));
    let notices: Vec<&Value> = seen
        .iter()
        .filter(|v| is_event(v, "response:updated"))
        .map(|v| &v[4]["challenge"]["response"])
        .collect();
    assert_eq!(
        notices.last(),
        Some(&&json!(">> hello world")),
        "the legacy member's last notice: {notices:?}"
    );
    assert_eq!(
        server.get_challenge(&ta, &id).await["response"],
        json!(">> hello world")
    );
}

/// Pushes a legacy `response:update` of `text`; returns its `ref`.
async fn update_response(
    c: &mut common::Client,
    join_ref: &str,
    topic: &str,
    text: &str,
) -> String {
    c.push(
        Some(join_ref),
        topic,
        "response:update",
        json!({ "response": text }),
    )
    .await
}

/// A connection of our own holding the database's write lock (until
/// `ROLLBACK`): the server's commits wait.
async fn hold_write_lock(server: &TestServer) -> sqlx::SqliteConnection {
    let db = server.dir.path().join("duet.db");
    let mut lock = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    lock
}

/// The JSON messages `c` receives until nothing comes for half a second.
async fn until_quiet(c: &mut common::Client) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Ok(received) =
        tokio::time::timeout(std::time::Duration::from_millis(500), c.recv()).await
    {
        if let common::Received::Json(v) = received {
            seen.push(v);
        }
    }
    seen
}
