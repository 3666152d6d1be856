//! Interviews (CONTRACT §6) against a real server: roles from the creator
//! and the interviewer key, the interviewers' controls, edits refused on
//! every path while locked or ended, the private notes no candidate gets a
//! byte of, integrity signals for interviewers only, and all of it across
//! a restart.

mod common;

use common::{Client, Received, TestServer};
use duet::challenges::doc;
use serde_json::{json, Value};

struct Interview {
    server: TestServer,
    creator: String,
    id: String,
    key: String,
}

async fn interview() -> Interview {
    let server = TestServer::start().await;
    let (creator, _) = server.sign_in("Ida").await;
    let res = reqwest::Client::new()
        .post(server.url("/api/challenges"))
        .bearer_auth(&creator)
        .json(&json!({ "title": "Two sum", "prompt": "", "language": "python" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let key = body["interviewer_key"].as_str().unwrap().to_owned();
    assert!(body["challenge"].get("interviewer_key").is_none());
    assert!(key.len() >= 16, "64 bits at least: {key}");
    let id = body["challenge"]["id"].as_str().unwrap().to_owned();
    Interview {
        server,
        creator,
        id,
        key,
    }
}

impl Interview {
    fn topic(&self) -> String {
        format!("challenges:{}", self.id)
    }

    /// A member signed in as `name`, joined with `params`: (client, join ref, reply).
    async fn member(&self, name: &str, params: Value) -> (Client, String, Value) {
        let (token, _) = self.server.sign_in(name).await;
        let mut c = self.server.connect(&token).await;
        let (join_ref, reply) = c.join(&self.topic(), params).await;
        (c, join_ref, reply)
    }

    async fn control(&self, token: &str, what: &str, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(
                self.server
                    .url(&format!("/api/challenges/{}/{what}", self.id)),
            )
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(json!(null)),
        )
    }
}

async fn edit(c: &mut Client, join_ref: &str, topic: &str, text: &str) -> Value {
    let r = c
        .push(
            Some(join_ref),
            topic,
            "response:update",
            json!({ "response": text }),
        )
        .await;
    c.reply(&r).await[4].clone()
}

async fn yjs(c: &mut Client, join_ref: &str, topic: &str, event: &str, message: &[u8]) -> Value {
    let r = c.push_binary(join_ref, topic, event, message).await;
    c.reply(&r).await[4].clone()
}

#[tokio::test]
async fn roles_come_from_the_creator_and_the_key_and_the_key_reaches_interviewers_only() {
    let iv = interview().await;
    let mut creator = iv.server.connect(&iv.creator).await;
    let (_, reply) = creator.join(&iv.topic(), json!({})).await;
    assert_eq!(reply["response"]["role"], "interviewer");
    assert_eq!(reply["response"]["interviewer_key"], json!(iv.key));
    let (_, _, with_key) = iv.member("Ken", json!({ "key": iv.key })).await;
    assert_eq!(with_key["response"]["role"], "interviewer");
    let (mut cand, _, candidate) = iv.member("Cato", json!({})).await;
    assert_eq!(candidate["status"], "ok");
    // A candidate's join reply is the contract's {"challenge"} alone.
    assert_eq!(candidate["response"].as_object().unwrap().len(), 1);
    assert!(!candidate.to_string().contains(&iv.key), "{candidate}");
    let (_, _, wrong) = iv.member("Wes", json!({ "key": "not-the-key" })).await;
    assert_eq!(wrong["status"], "error");
    assert_eq!(wrong["response"]["reason"], "forbidden");
    // Presence metas carry the role.
    let state = cand.expect(|v| v[3] == "presence_state").await;
    let roles: Vec<String> = state[4]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["metas"][0]["role"].as_str().unwrap().to_owned())
        .collect();
    assert!(roles.contains(&"interviewer".into()) && roles.contains(&"candidate".into()));
    // The API never gives the key after its creation.
    let (cand_token, _) = iv.server.sign_in("Reader").await;
    let as_candidate = iv.server.get_challenge(&cand_token, &iv.id).await;
    assert!(as_candidate.get("interviewer_key").is_none());
    assert!(!as_candidate.to_string().contains(&iv.key));
    // A challenge object is the same for everyone: never the key.
    assert_eq!(
        iv.server.get_challenge(&iv.creator, &iv.id).await,
        as_candidate
    );
}

#[tokio::test]
async fn only_interviewers_lock_unlock_and_end_and_every_member_is_told() {
    let iv = interview().await;
    let (cand_token, _) = iv.server.sign_in("Cato").await;
    let (mut cand, _, _) = iv.member("Cato2", json!({})).await;
    for what in ["lock", "unlock", "end"] {
        let (status, body) = iv.control(&cand_token, what, json!({})).await;
        assert_eq!(status, 403, "{what}: {body}");
        let (status, _) = iv
            .control(&cand_token, what, json!({ "key": "nope" }))
            .await;
        assert_eq!(status, 403);
    }
    let (status, body) = iv.control(&iv.creator, "lock", json!({})).await;
    assert_eq!(
        (status, body["challenge"]["locked"].clone()),
        (200, json!(true))
    );
    let told = cand.expect(|v| v[3] == "challenge:updated").await;
    assert_eq!(told[4]["challenge"]["locked"], true);
    // Another user with the key may control too.
    let (status, body) = iv
        .control(&cand_token, "unlock", json!({ "key": iv.key }))
        .await;
    assert_eq!(
        (status, body["challenge"]["locked"].clone()),
        (200, json!(false))
    );
    let (status, body) = iv.control(&iv.creator, "end", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["challenge"]["status"], "ended");
    assert!(body["challenge"]["ended_at"].is_string());
    let told = cand
        .expect(|v| v[3] == "challenge:updated" && v[4]["challenge"]["status"] == "ended")
        .await;
    assert!(!told.to_string().contains(&iv.key));
}

#[tokio::test]
async fn a_locked_room_refuses_candidates_edits_on_every_path_and_an_ended_one_everyones() {
    let iv = interview().await;
    let topic = iv.topic();
    let (mut ivw, iref, _) = iv.member("Ken", json!({ "key": iv.key })).await;
    let (mut cand, cref, _) = iv.member("Cato", json!({})).await;
    assert_eq!(
        edit(&mut cand, &cref, &topic, "before").await["status"],
        "ok"
    );
    iv.control(&iv.creator, "lock", json!({})).await;
    let local = doc::new_doc();
    let u = doc::replace_text(&local, "by yjs").unwrap();
    let read_only = json!({ "status": "error", "response": { "reason": "read only" } });
    assert_eq!(
        edit(&mut cand, &cref, &topic, "locked out").await,
        read_only
    );
    assert_eq!(
        yjs(&mut cand, &cref, &topic, "yjs", &doc::sync_update(&u)).await,
        read_only
    );
    assert_eq!(
        yjs(&mut cand, &cref, &topic, "yjs", &doc::sync_step2(&u)).await,
        read_only
    );
    // Nothing changed, and the interviewer, who still edits, heard nothing.
    assert_eq!(
        iv.server.get_challenge(&iv.creator, &iv.id).await["response"],
        "before"
    );
    assert_eq!(
        edit(&mut ivw, &iref, &topic, "interviewer edits").await["status"],
        "ok"
    );
    iv.control(&iv.creator, "end", json!({})).await;
    assert_eq!(edit(&mut ivw, &iref, &topic, "too late").await, read_only);
    assert_eq!(edit(&mut cand, &cref, &topic, "too late").await, read_only);
    assert_eq!(
        iv.server.get_challenge(&iv.creator, &iv.id).await["response"],
        "interviewer edits"
    );
}

#[tokio::test]
async fn long_poll_edits_are_refused_while_locked() {
    let iv = interview().await;
    iv.control(&iv.creator, "lock", json!({})).await;
    let (token, _) = iv.server.sign_in("Poll").await;
    let base = format!(
        "{}?vsn=2.0.0&token={token}",
        iv.server.url("/socket/longpoll")
    );
    let first = common::get_json(&base).await;
    let url = format!("{base}&token={}", first["token"].as_str().unwrap());
    let topic = iv.topic();
    common::post_ndjson(
        &url,
        &[
            json!(["1", "1", &topic, "phx_join", {}]),
            json!(["1", "2", &topic, "response:update", { "response": "sneaky" }]),
        ],
    )
    .await;
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let polled = common::get_json(&url).await;
        for m in polled["messages"].as_array().into_iter().flatten() {
            let m: Value = serde_json::from_str(m.as_str().unwrap()).unwrap();
            if m[3] == "phx_reply" {
                replies.push(m);
            }
        }
    }
    assert_eq!(
        replies[1][4]["response"]["reason"], "read only",
        "{replies:?}"
    );
    assert_eq!(
        iv.server.get_challenge(&iv.creator, &iv.id).await["response"],
        ""
    );
}

/// Drains what `c` received until nothing comes for a moment: every frame.
async fn frames_of(c: &mut Client) -> Vec<u8> {
    let mut all = Vec::new();
    while let Ok(got) = tokio::time::timeout(std::time::Duration::from_millis(300), c.recv()).await
    {
        match got {
            Received::Json(v) => all.extend(v.to_string().into_bytes()),
            Received::Binary(b) => all.extend(b),
            Received::Closed(_) => break,
        }
    }
    all
}

#[tokio::test]
async fn private_notes_are_for_interviewers_and_no_candidate_gets_a_byte() {
    let iv = interview().await;
    let notes = format!("notes:{}", iv.id);
    let (mut cand, _, _) = iv.member("Cato", json!({})).await;
    let (_, refused) = cand.join(&notes, json!({})).await;
    assert_eq!(refused["response"]["reason"], "forbidden");
    let (_, refused) = cand.join(&notes, json!({ "key": "guess" })).await;
    assert_eq!(refused["response"]["reason"], "forbidden");
    let mut ivw = iv.server.connect(&iv.creator).await;
    let (nref, ok) = ivw.join(&notes, json!({})).await;
    assert_eq!(ok["status"], "ok");
    let local = doc::new_doc();
    let t = local.get_or_insert_text("notes");
    let marker = "MARKER-strong-hire-7f3a";
    let update = {
        use yrs::{Text, Transact};
        let mut txn = local.transact_mut();
        t.insert(&mut txn, 0, marker);
        txn.encode_update_v1()
    };
    assert_eq!(
        yjs(&mut ivw, &nref, &notes, "yjs", &doc::sync_update(&update)).await["status"],
        "ok"
    );
    // A second interviewer syncs and gets the note.
    let (token, _) = iv.server.sign_in("Ken").await;
    let mut ken = iv.server.connect(&token).await;
    let (kref, _) = ken.join(&notes, json!({ "key": iv.key })).await;
    let step1 = doc::sync_step1(&doc::state_vector(&doc::new_doc()));
    ken.push_binary(&kref, &notes, "yjs_sync", &step1).await;
    let got = frames_of(&mut ken).await;
    assert!(got.windows(marker.len()).any(|w| w == marker.as_bytes()));
    // The candidate got none of it, through any frame.
    let got = frames_of(&mut cand).await;
    assert!(!got.windows(marker.len()).any(|w| w == marker.as_bytes()));
    // After a restart the status and the notes are still there.
    iv.control(&iv.creator, "lock", json!({})).await;
    iv.control(&iv.creator, "end", json!({})).await;
    drop((cand, ivw, ken));
    let dir = iv.server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    let c = server.get_challenge(&iv.creator, &iv.id).await;
    assert_eq!(
        (c["status"].clone(), c["locked"].clone()),
        (json!("ended"), json!(true))
    );
    let mut again = server.connect(&iv.creator).await;
    let (aref, _) = again.join(&notes, json!({})).await;
    again.push_binary(&aref, &notes, "yjs_sync", &step1).await;
    let got = frames_of(&mut again).await;
    assert!(
        got.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "notes lost in a restart"
    );
}

#[tokio::test]
async fn integrity_signals_reach_interviewers_only_and_the_timeline() {
    let iv = interview().await;
    let topic = iv.topic();
    let (mut ivw, _, _) = iv.member("Ken", json!({ "key": iv.key })).await;
    let (mut cand, cref, _) = iv.member("Cato", json!({})).await;
    let (mut other, _, _) = iv.member("Otto", json!({})).await;
    for (event, payload) in [
        ("paste", json!({ "chars": 120 })),
        ("away", json!({})),
        ("back", json!({})),
    ] {
        let r = cand.push(Some(&cref), &topic, event, payload).await;
        assert_eq!(cand.reply(&r).await[4]["status"], "ok");
    }
    let seen = ivw
        .expect(|v| v[3] == "activity" && v[4]["kind"] == "paste")
        .await;
    assert_eq!(seen[4]["chars"], 120);
    assert_eq!(seen[4]["first_name"], "Cato");
    ivw.expect(|v| v[3] == "activity" && v[4]["kind"] == "back")
        .await;
    let got = frames_of(&mut other).await;
    assert!(!String::from_utf8_lossy(&got).contains("\"activity\""));
    let timeline: Value = reqwest::Client::new()
        .get(
            iv.server
                .url(&format!("/api/challenges/{}/timeline", iv.id)),
        )
        .bearer_auth(&iv.creator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["join", "paste", "away", "back"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn run_can_be_turned_off_by_an_interviewer() {
    let iv = interview().await;
    let topic = iv.topic();
    let (mut cand, cref, _) = iv.member("Cato", json!({})).await;
    let (status, body) = iv
        .control(&iv.creator, "run", json!({ "enabled": false }))
        .await;
    assert_eq!(
        (status, body["challenge"]["run_enabled"].clone()),
        (200, json!(false))
    );
    let r = cand
        .push(
            Some(&cref),
            &topic,
            "run:start",
            json!({ "code": "print(1)" }),
        )
        .await;
    assert_eq!(cand.reply(&r).await[4]["response"]["reason"], "run is off");
    let (cand_token, _) = iv.server.sign_in("Nope").await;
    assert_eq!(
        iv.control(&cand_token, "run", json!({ "enabled": true }))
            .await
            .0,
        403
    );
}
