//! Timeline and playback (CONTRACT §7) against a real server: `text?at` is
//! exact at every edit boundary of random sessions (against an oracle that
//! replays the log up to each instant), across checkpoints; the timeline
//! lists what happened in order; export then import reproduces every
//! `text?at`; who may read them.

mod common;

use common::{Client, TestServer};
use duet::challenges::doc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A random edit of `current`: an insertion or a deletion somewhere.
fn random_text(current: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = current.chars().collect();
    let at = rng.gen_range(0..=chars.len());
    if rng.gen_bool(0.3) && at < chars.len() {
        let end = (at + rng.gen_range(1..4)).min(chars.len());
        chars.drain(at..end);
    } else {
        let alphabet = ['a', 'é', '😀', '\n', ' ', 'z', 'q'];
        for _ in 0..rng.gen_range(1..4) {
            chars.insert(at, alphabet[rng.gen_range(0..alphabet.len())]);
        }
    }
    chars.into_iter().collect()
}

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(json!(null)))
}

/// A Yjs member: syncs `local` with the room.
async fn yjs_member(server: &TestServer, token: &str, topic: &str) -> (Client, String, yrs::Doc) {
    let mut c = server.connect(token).await;
    let (r, _) = c.join(topic, json!({})).await;
    let local = doc::new_doc();
    c.push_binary(
        &r,
        topic,
        "yjs_sync",
        &doc::sync_step1(&doc::state_vector(&local)),
    )
    .await;
    let frame = c.expect_binary(|f| f[0] == 0).await;
    let payload = &frame[4 + frame[1..4].iter().map(|&n| n as usize).sum::<usize>()..];
    if let Ok(doc::YMessage::SyncStep2(u)) = doc::decode_message(payload) {
        doc::apply_update(&local, &u).unwrap();
    }
    (c, r, local)
}

/// The answer after every update of `updates` (export rows) at or before `at`.
fn oracle(updates: &[Value], at: &str) -> String {
    let d = doc::new_doc();
    for u in updates
        .iter()
        .filter(|u| u["doc"] == 0 && u["at"].as_str().unwrap() <= at)
    {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(u["update_v1"].as_str().unwrap())
            .unwrap();
        doc::apply_update(&d, &bytes).unwrap();
    }
    doc::text(&d)
}

/// The instant one millisecond before `at` (fixed-width timestamps).
fn just_before(at: &str) -> String {
    let t =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    duet::store::timestamp_of(t - time::Duration::milliseconds(1))
}

/// 60 random edits: two of three by a Yjs member (Ann), one of three by a
/// legacy member (Bob) typing on the text the room has.
async fn play_random_session(server: &TestServer, ann: &str, bob: &str, id: &str) {
    let topic = format!("challenges:{id}");
    let mut rng = StdRng::seed_from_u64(0x7e57_2026);
    let (mut a, ar, a_doc) = yjs_member(server, ann, &topic).await;
    let mut b = server.connect(bob).await;
    let (br, _) = b.join(&topic, json!({})).await;
    for n in 0..60 {
        if n % 3 == 2 {
            // A legacy member types on what the room has.
            let now = server.get_challenge(ann, id).await["response"]
                .as_str()
                .unwrap()
                .to_owned();
            let r = b
                .push(
                    Some(&br),
                    &topic,
                    "response:update",
                    json!({ "response": random_text(&now, &mut rng) }),
                )
                .await;
            assert_eq!(b.reply(&r).await[4]["status"], "ok");
            // Ann catches up through the relays before her next edit.
            let now = server.get_challenge(ann, id).await["response"]
                .as_str()
                .unwrap()
                .to_owned();
            while doc::text(&a_doc) != now {
                let frame = a.expect_binary(|f| f[0] == 2).await;
                // A broadcast: [2, topic and event lengths, them, payload].
                let payload = &frame[3 + frame[1..3].iter().map(|&n| n as usize).sum::<usize>()..];
                if let Ok(doc::YMessage::Update(u)) = doc::decode_message(payload) {
                    doc::apply_update(&a_doc, &u).unwrap();
                }
            }
        } else {
            let target = random_text(&doc::text(&a_doc), &mut rng);
            let u = doc::replace_text(&a_doc, &target).unwrap();
            let r = a
                .push_binary(&ar, &topic, "yjs", &doc::sync_update(&u))
                .await;
            assert_eq!(a.reply(&r).await[4]["status"], "ok");
        }
    }
}

#[tokio::test]
async fn text_at_is_exact_at_every_edit_boundary_and_survives_export_and_import() {
    // Small snapshots: many checkpoints, so seeks go through them.
    let server = TestServer::start_with(|c| c.snapshot_every = 7).await;
    let (ann, _) = server.sign_in("Ann").await;
    let (bob, _) = server.sign_in("Bob").await;
    let id = server.create_challenge(&ann).await;
    play_random_session(&server, &ann, &bob, &id).await;
    let (status, export) = get(&server, &ann, &format!("/api/challenges/{id}/export")).await;
    assert_eq!(status, 200);
    let updates = export["updates"].as_array().unwrap().clone();
    assert_eq!(updates.len(), 60);
    let mut boundaries: Vec<String> = updates
        .iter()
        .map(|u| u["at"].as_str().unwrap().to_owned())
        .collect();
    boundaries.dedup();
    for at in &boundaries {
        for instant in [at.clone(), just_before(at)] {
            let (status, body) = get(
                &server,
                &ann,
                &format!("/api/challenges/{id}/text?at={instant}"),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["text"],
                json!(oracle(&updates, &instant)),
                "at {instant}"
            );
        }
    }
    // The last boundary is the answer as it stands.
    let last = boundaries.last().unwrap();
    assert_eq!(
        oracle(&updates, last),
        server.get_challenge(&ann, &id).await["response"]
            .as_str()
            .unwrap()
    );
    // Export, import (as Bob), and every instant reads the same.
    let res = reqwest::Client::new()
        .post(server.url("/api/challenges/import"))
        .bearer_auth(&bob)
        .json(&export)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let imported: Value = res.json().await.unwrap();
    let copy = imported["challenge"]["id"].as_str().unwrap().to_owned();
    assert_eq!(imported["challenge"]["status"], "ended");
    for at in &boundaries {
        let (_, original) = get(&server, &ann, &format!("/api/challenges/{id}/text?at={at}")).await;
        let (_, again) = get(
            &server,
            &bob,
            &format!("/api/challenges/{copy}/text?at={at}"),
        )
        .await;
        assert_eq!(original["text"], again["text"], "at {at}");
    }
    let (_, copy_export) = get(&server, &bob, &format!("/api/challenges/{copy}/export")).await;
    assert_eq!(
        timeline_of_export(&copy_export),
        timeline_of_export(&export)
    );
    let (_, original) = get(&server, &ann, &format!("/api/challenges/{id}/timeline")).await;
    let (_, again) = get(&server, &bob, &format!("/api/challenges/{copy}/timeline")).await;
    assert_eq!(again, original);
}

#[tokio::test]
async fn the_timeline_lists_what_happened_in_order_with_authors_and_times() {
    let server = TestServer::start().await;
    let (ann, ann_id) = server.sign_in("Ann").await;
    let id = server.create_challenge(&ann).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ann).await;
    let (ar, _) = a.join(&topic, json!({})).await;
    for text in ["hello", "hello world", "help world"] {
        let r = a
            .push(
                Some(&ar),
                &topic,
                "response:update",
                json!({ "response": text }),
            )
            .await;
        a.reply(&r).await;
    }
    let r = a
        .push(Some(&ar), &topic, "paste", json!({ "chars": 42 }))
        .await;
    a.reply(&r).await;
    let lock = reqwest::Client::new()
        .post(server.url(&format!("/api/challenges/{id}/lock")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = get(&server, &ann, &format!("/api/challenges/{id}/timeline")).await;
    assert_eq!(status, 200);
    let events = body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["join", "edit", "edit", "edit", "paste", "lock", "leave"],
        "{body}"
    );
    let edits: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e["kind"] == "edit")
        .map(|e| {
            (
                e["inserted"].as_i64().unwrap(),
                e["deleted"].as_i64().unwrap(),
            )
        })
        .collect();
    // "hello world" to "help world": "lo" becomes "p".
    assert_eq!(edits, [(5, 0), (6, 0), (1, 2)]);
    for e in events {
        assert_eq!(e["user_id"], json!(ann_id));
        assert_eq!(e["first_name"], "Ann");
        let at = e["at"].as_str().unwrap();
        assert_eq!(at.len(), "2026-12-06T10:00:00.000Z".len(), "{at}");
    }
    assert!(events
        .windows(2)
        .all(|w| w[0]["at"].as_str() <= w[1]["at"].as_str()));
    assert_eq!(events[4]["chars"], 42);
}

#[tokio::test]
async fn interviewers_read_the_timeline_any_time_candidates_once_ended() {
    let server = TestServer::start().await;
    let (ann, _) = server.sign_in("Ann").await;
    let (cand, _) = server.sign_in("Cato").await;
    let res: Value = reqwest::Client::new()
        .post(server.url("/api/challenges"))
        .bearer_auth(&ann)
        .json(&json!({ "title": "t", "prompt": "", "language": "python" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = res["challenge"]["id"].as_str().unwrap();
    let key = res["interviewer_key"].as_str().unwrap();
    for what in ["timeline", "text", "export"] {
        let path = format!("/api/challenges/{id}/{what}");
        assert_eq!(get(&server, &ann, &path).await.0, 200, "{what}");
        assert_eq!(get(&server, &cand, &path).await.0, 403, "{what}");
        assert_eq!(
            get(&server, &cand, &format!("{path}?key=wrong")).await.0,
            403
        );
        assert_eq!(
            get(&server, &cand, &format!("{path}?key={key}")).await.0,
            200
        );
    }
    let ended = reqwest::Client::new()
        .post(server.url(&format!("/api/challenges/{id}/end")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    for what in ["timeline", "text", "export"] {
        assert_eq!(
            get(&server, &cand, &format!("/api/challenges/{id}/{what}"))
                .await
                .0,
            200
        );
    }
    let (status, _) = get(
        &server,
        &cand,
        &format!("/api/challenges/{id}/text?at=yesterday"),
    )
    .await;
    assert_eq!(status, 400);
}

/// Ann joins `id` and makes `edits` edits through `response:update`;
/// returns her client (still joined).
async fn edit_as(server: &TestServer, token: &str, id: &str, edits: &[&str]) -> Client {
    let topic = format!("challenges:{id}");
    let mut a = server.connect(token).await;
    let (ar, _) = a.join(&topic, json!({})).await;
    for text in edits {
        let r = a
            .push(
                Some(&ar),
                &topic,
                "response:update",
                json!({ "response": text }),
            )
            .await;
        a.reply(&r).await;
    }
    a
}

/// The export's timeline, rebuilt as GET /timeline gives it: each event
/// after the `after` first updates, each update an edit.
fn timeline_of_export(export: &Value) -> Vec<Value> {
    let updates = export["updates"].as_array().unwrap();
    let mut events = export["events"].as_array().unwrap().iter().peekable();
    let mut out = Vec::new();
    for (i, u) in updates.iter().enumerate() {
        while let Some(e) = events.next_if(|e| e["after"].as_i64().unwrap() <= i as i64) {
            out.push((e["kind"].clone(), e["user_id"].clone(), e["at"].clone()));
        }
        out.push((json!("edit"), u["user_id"].clone(), u["at"].clone()));
    }
    for e in events {
        out.push((e["kind"].clone(), e["user_id"].clone(), e["at"].clone()));
    }
    out.into_iter()
        .map(|(kind, user_id, at)| json!([kind, user_id, at]))
        .collect()
}

#[tokio::test]
async fn the_export_holds_each_edit_once() {
    let server = TestServer::start().await;
    let (ann, _) = server.sign_in("Ann").await;
    let id = server.create_challenge(&ann).await;
    let a = edit_as(&server, &ann, &id, &["a", "ab", "abc", "abcd"]).await;
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, export) = get(&server, &ann, &format!("/api/challenges/{id}/export")).await;
    // Every array of the file: how many of its entries are an edit.
    let edits_in = |v: &Value| {
        v.as_array().map_or(0, |rows| {
            rows.iter()
                .filter(|r| r["kind"] == "edit" || r.get("update_v1").is_some())
                .count()
        })
    };
    let total: usize = export.as_object().unwrap().values().map(edits_in).sum();
    assert_eq!(total, 4, "each of the 4 edits once in the file: {export}");
    // What the file holds is still the whole timeline.
    let (_, timeline) = get(&server, &ann, &format!("/api/challenges/{id}/timeline")).await;
    let shown: Vec<Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["kind"], e["user_id"], e["at"]]))
        .collect();
    assert_eq!(timeline_of_export(&export), shown);
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(json!(null)))
}

#[tokio::test]
async fn an_ended_session_stops_at_its_end() {
    let server = TestServer::start().await;
    let (ann, _) = server.sign_in("Ann").await;
    let (cato, _) = server.sign_in("Cato").await;
    let id = server.create_challenge(&ann).await;
    let a = edit_as(&server, &ann, &id, &["x", "xy"]).await;
    let (status, _) = post(
        &server,
        &ann,
        &format!("/api/challenges/{id}/end"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    // After the end: Ann leaves, Cato and Ann come to review it, a
    // control is tried again.
    drop(a);
    let c = edit_as(&server, &cato, &id, &[]).await;
    let a = edit_as(&server, &ann, &id, &[]).await;
    post(
        &server,
        &ann,
        &format!("/api/challenges/{id}/end"),
        json!({}),
    )
    .await;
    drop((a, c));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, timeline) = get(&server, &ann, &format!("/api/challenges/{id}/timeline")).await;
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "edit", "edit", "end"], "{timeline}");
    let (_, export) = get(&server, &ann, &format!("/api/challenges/{id}/export")).await;
    let kinds: Vec<&str> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "end"], "{export}");
}

#[tokio::test]
async fn an_import_keeps_the_names_of_authors_this_server_does_not_know() {
    let home = TestServer::start().await;
    let (ann, _) = home.sign_in("Ann").await;
    let id = home.create_challenge(&ann).await;
    drop(edit_as(&home, &ann, &id, &["a", "ab"]).await);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, export) = get(&home, &ann, &format!("/api/challenges/{id}/export")).await;
    let elsewhere = TestServer::start().await;
    let (zoe, _) = elsewhere.sign_in("Zoe").await;
    let mut hostile = export.clone();
    hostile["updates"][0]["first_name"] = json!("Ann\u{7}<b>");
    let (status, _) = post(&elsewhere, &zoe, "/api/challenges/import", hostile).await;
    assert_eq!(status, 422, "a name no one could sign in with is refused");
    let (status, imported) = post(&elsewhere, &zoe, "/api/challenges/import", export).await;
    assert_eq!(status, 201, "{imported}");
    let copy = imported["challenge"]["id"].as_str().unwrap();
    let (_, timeline) = get(
        &elsewhere,
        &zoe,
        &format!("/api/challenges/{copy}/timeline"),
    )
    .await;
    let names: Vec<(&str, &str)> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["first_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("join", "Ann"),
            ("edit", "Ann"),
            ("edit", "Ann"),
            ("leave", "Ann")
        ]
    );
    let (_, again) = get(&elsewhere, &zoe, &format!("/api/challenges/{copy}/export")).await;
    for u in again["updates"].as_array().unwrap() {
        assert_eq!(u["first_name"], "Ann", "{u}");
    }
}
