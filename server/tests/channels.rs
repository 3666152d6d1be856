//! The socket life cycle over a real loopback server, with the `echo:*`
//! test channel.

mod common;

use common::{get_json, post_ndjson, Received, TestServer};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn is_event(v: &Value, event: &str) -> bool {
    v[3] == json!(event)
}

#[tokio::test]
async fn refuses_connect_without_or_with_bad_token() {
    let server = TestServer::start().await;
    for query in [
        "vsn=2.0.0",
        "vsn=2.0.0&token=nope",
        "vsn=2.0.0&token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        let url = format!("ws://{}/socket/websocket?{query}", server.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
            other => panic!("{query}: expected 403, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn accepts_auth_token_subprotocol_and_echoes_phoenix() {
    use base64::Engine as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&token);
    let mut req = format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("phoenix, base64url.bearer.phx.{b64}")
            .parse()
            .unwrap(),
    );
    let (_ws, res) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects with authToken");
    assert_eq!(
        res.headers().get("sec-websocket-protocol").unwrap(),
        "phoenix"
    );
}

#[tokio::test]
async fn check_origin_refuses_foreign_origins() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://allowed.example".into()])
            .await;
    let (token, _) = server.sign_in("Sophie").await;
    let url = format!(
        "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
        server.addr
    );
    for (origin, ok) in [
        ("https://evil.example", false),
        ("https://allowed.example", true),
        (&*format!("http://{}", server.addr), true),
    ] {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        let result = tokio_tungstenite::connect_async(req).await;
        assert_eq!(result.is_ok(), ok, "{origin}");
    }
}

#[tokio::test]
async fn heartbeat_join_reply_error_and_unmatched_topic() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4],
        json!({"status": "ok", "response": {}})
    );

    let (_, reply) = c.join("echo:a", json!({"x": 1})).await;
    assert_eq!(
        reply,
        json!({"status": "ok", "response": {"topic": "echo:a", "params": {"x": 1}}})
    );
    let (_, reply) = c.join("echo:b", json!({"fail": true})).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "join refused"}})
    );
    let (_, reply) = c.join("nowhere:1", json!({})).await;
    assert_eq!(reply["status"], json!("error"));

    let r = c.push(Some("9"), "echo:nojoin", "ping", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4],
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
}

#[tokio::test]
async fn push_reply_ok_error_and_unknown_event() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    let (jr, _) = c.join("echo:a", json!({})).await;
    let r = c.push(Some(&jr), "echo:a", "ping", json!({"n": 42})).await;
    assert_eq!(
        c.reply(&r).await[4],
        json!({"status": "ok", "response": {"n": 42}})
    );
    let r = c.push(Some(&jr), "echo:a", "fail", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4],
        json!({"status": "error", "response": {"reason": "requested failure"}})
    );
    let r = c.push(Some(&jr), "echo:a", "what", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4]["response"]["reason"],
        json!("unknown event")
    );
}

#[tokio::test]
async fn binary_push_gets_binary_reply_and_push() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    let (jr, _) = c.join("echo:bin", json!({})).await;
    c.push_binary(&jr, "echo:bin", "binary", &[1, 2, 3, 250])
        .await;
    let push = c.expect_binary(|b| b[0] == 0).await;
    assert!(push.ends_with(&[1, 2, 3, 250]));
    let reply = c.expect_binary(|b| b[0] == 1).await;
    assert!(reply.ends_with(b"ok\x01\x02\x03\xfa"));
}

#[tokio::test]
async fn broadcast_reaches_all_and_broadcast_from_skips_sender() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut a = server.connect(&token).await;
    let mut b = server.connect(&token).await;
    let (ja, _) = a.join("echo:room", json!({})).await;
    b.join("echo:room", json!({})).await;
    let r = a
        .push(Some(&ja), "echo:room", "broadcast_from", json!({"n": 1}))
        .await;
    a.reply(&r).await;
    let got = b.expect(|v| is_event(v, "broadcast")).await;
    assert_eq!(got, json!([null, null, "echo:room", "broadcast", {"n": 1}]));
    let r = a
        .push(Some(&ja), "echo:room", "broadcast", json!({"n": 2}))
        .await;
    // The sender gets the n=2 broadcast and never the n=1 one.
    let mine = a.expect(|v| is_event(v, "broadcast")).await;
    assert_eq!(mine[4], json!({"n": 2}));
    a.reply(&r).await;
    b.expect(|v| is_event(v, "broadcast") && v[4] == json!({"n": 2}))
        .await;
}

#[tokio::test]
async fn leave_replies_then_closes_and_duplicate_join_closes_previous_channel() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    let (j1, _) = c.join("echo:a", json!({})).await;
    let (j2, reply) = c.join("echo:a", json!({})).await;
    assert_eq!(reply["status"], json!("ok"));
    let close = c.expect(|v| is_event(v, "phx_close")).await;
    assert_eq!(close, json!([j1, j1, "echo:a", "phx_close", {}]));
    let r = c.push(Some(&j2), "echo:a", "phx_leave", json!({})).await;
    assert_eq!(c.reply(&r).await[4]["status"], json!("ok"));
    let close = c.expect(|v| is_event(v, "phx_close")).await;
    assert_eq!(close[0], json!(j2));
    let r = c.push(Some(&j2), "echo:a", "ping", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4]["response"]["reason"],
        json!("unmatched topic")
    );
}

#[tokio::test]
async fn crash_sends_phx_error_and_socket_survives() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    let (jr, _) = c.join("echo:a", json!({})).await;
    c.push(Some(&jr), "echo:a", "crash", json!({})).await;
    let err = c.expect(|v| is_event(v, "phx_error")).await;
    assert_eq!(err, json!([jr, jr, "echo:a", "phx_error", {}]));
    let (_, reply) = c.join("echo:a", json!({})).await;
    assert_eq!(reply["status"], json!("ok"));
}

#[tokio::test]
async fn rejects_101st_join() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    for i in 0..100 {
        let (_, reply) = c.join(&format!("echo:{i}"), json!({})).await;
        assert_eq!(reply["status"], json!("ok"), "join {i}");
    }
    let (_, reply) = c.join("echo:100", json!({})).await;
    assert_eq!(reply["status"], json!("error"));
    assert!(reply["response"]["reason"]
        .as_str()
        .unwrap()
        .contains("too many"));
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_others_keep_working() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut big = server.connect(&token).await;
    big.send_raw(Message::binary(vec![0u8; 2 << 20])).await;
    assert_eq!(big.closed().await, Some(1009));
    let mut c = server.connect(&token).await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    c.reply(&r).await;
}

#[tokio::test]
async fn flood_beyond_rate_limit_closes_with_1008() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut flooder = server.connect(&token).await;
    for i in 0..2000 {
        let msg =
            Message::text(json!([null, i.to_string(), "phoenix", "heartbeat", {}]).to_string());
        if flooder.ws.feed(msg).await.is_err() {
            break;
        }
    }
    let _ = flooder.ws.flush().await;
    assert_eq!(flooder.closed().await, Some(1008));
    let mut c = server.connect(&token).await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    c.reply(&r).await;
}

#[tokio::test]
async fn garbage_frames_are_survived() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    for m in [
        Message::text("not json"),
        Message::text("[1,2,3]"),
        Message::text("{\"topic\":\"x\"}"),
        Message::binary(vec![7, 7, 7]),
        Message::binary((0..255u8).collect::<Vec<_>>()),
    ] {
        c.send_raw(m).await;
    }
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(c.reply(&r).await[4]["status"], json!("ok"));
}

#[tokio::test]
async fn disconnect_broadcast_closes_every_socket_of_that_user_only() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let (other, _) = server.sign_in("Antoin").await;
    let mut a = server.connect(&token).await;
    let mut b = server.connect(&token).await;
    let mut o = server.connect(&other).await;
    let (ja, _) = a.join("echo:a", json!({})).await;
    a.push(Some(&ja), "echo:a", "disconnect_me", json!({}))
        .await;
    assert!(matches!(a.closed().await, Some(1000) | None));
    assert!(matches!(b.closed().await, Some(1000) | None));
    let r = o.push(None, "phoenix", "heartbeat", json!({})).await;
    o.reply(&r).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected() {
    let server = TestServer::start_with(|c| {
        // Small, but above the replies one read turn can produce at once:
        // a burst of pushes is answered in a burst.
        c.outbound_queue = 64;
        c.socket_rate = 100_000;
        c.socket_burst = 100_000;
    })
    .await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut sleeper = server.connect(&token).await;
    sleeper.join("echo:flood", json!({})).await;
    let mut flooder = server.connect(&token).await;
    let (jf, _) = flooder.join("echo:flood", json!({})).await;
    let chunk = "x".repeat(64 * 1024);
    // The sleeper never reads: its TCP buffers fill, then its queue, then it is dropped.
    for _ in 0..400 {
        flooder
            .push(
                Some(&jf),
                "echo:flood",
                "broadcast_from",
                json!({ "data": chunk }),
            )
            .await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("duet_slow_disconnects_total 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow client not disconnected:\n{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The flooder is still served.
    let r = flooder.push(None, "phoenix", "heartbeat", json!({})).await;
    flooder.reply(&r).await;
    drop(sleeper);
}

/// Size of each edit in the byte-cap tests: just under the 500 000
/// characters a `response:update` may carry (hardening D7's case).
const BIG_EDIT: usize = 499_000;

/// Receives until the reply to `r`, dropping everything else (keeping the
/// big `response:updated`s in a backlog would cost the test 0.5 MB each).
async fn drain_until_reply(c: &mut common::Client, r: &str) -> Value {
    loop {
        match c.recv().await {
            Received::Json(v) if v[1] == json!(r) && is_event(&v, "phx_reply") => return v,
            Received::Closed(code) => panic!("closed ({code:?}) before the reply to {r}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_is_dropped_at_the_byte_cap_not_at_1024_frames() {
    // Default limits: 1 024 frames, 8 MiB.
    let server = TestServer::start().await;
    let (busy_token, _) = server.sign_in("Busy").await;
    let (sleeper_token, _) = server.sign_in("Sleeper").await;
    let id = server.create_challenge(&busy_token).await;
    let topic = format!("challenges:{id}");
    // A 4 KiB receive window: what the sleeper does not read waits in the
    // server's queue, not in the kernel's buffers.
    let mut sleeper = server.connect_with_rcvbuf(&sleeper_token, 4096).await;
    sleeper.join(&topic, json!({})).await;
    let mut busy = server.connect(&busy_token).await;
    let (jr, _) = busy.join(&topic, json!({})).await;
    let cap = duet::channels::Limits::default().outbound_bytes;
    // Each edit queues one `response:updated` of ~BIG_EDIT bytes for the
    // sleeper: it must be dropped once ~cap bytes wait (plus what the
    // kernel took before its window closed), not after 1 024 frames
    // (0.5 GB).
    let at_cap = cap / BIG_EDIT;
    let at_most = at_cap + 16;
    let mut dropped_after = None;
    for n in 1..=at_most {
        let text = format!("{n:08}").repeat(BIG_EDIT / 8);
        let r = busy
            .push(
                Some(&jr),
                &topic,
                "response:update",
                json!({ "response": text }),
            )
            .await;
        let reply = drain_until_reply(&mut busy, &r).await;
        assert_eq!(reply[4]["status"], json!("ok"), "edit {n}: {reply}");
        if server.metric("duet_slow_disconnects_total").await > 0 {
            dropped_after = Some(n);
            break;
        }
    }
    let n = dropped_after.unwrap_or_else(|| {
        panic!(
            "the sleeper was not dropped after {at_most} edits of {BIG_EDIT} B ({} MB queued)",
            at_most * BIG_EDIT / 1_000_000
        )
    });
    assert!(
        n > at_cap,
        "dropped after {n} edits, before {cap} bytes were queued"
    );
    // The busy member is still served.
    let r = busy.push(None, "phoenix", "heartbeat", json!({})).await;
    drain_until_reply(&mut busy, &r).await;
    drop(sleeper);
}

/// Broadcasts `{"data": data}` to the topic's other members `count` times,
/// each acknowledged before the next.
async fn broadcast_from(
    c: &mut common::Client,
    join_ref: &str,
    topic: &str,
    data: &str,
    count: usize,
) {
    for _ in 0..count {
        let r = c
            .push(
                Some(join_ref),
                topic,
                "broadcast_from",
                json!({ "data": data }),
            )
            .await;
        drain_until_reply(c, &r).await;
    }
}

#[tokio::test]
async fn a_long_poll_session_is_dropped_at_the_byte_cap_and_its_polls_free_the_bytes() {
    const CAP: usize = 1 << 20;
    const PAYLOAD: usize = 200_000;
    let server = TestServer::start_with(|c| c.outbound_bytes = CAP).await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut ws = server.connect(&token).await;
    let (jw, _) = ws.join("echo:lp", json!({})).await;
    let base = format!("{}?vsn=2.0.0&token={token}", server.url("/socket/longpoll"));
    let first = get_json(&base).await;
    let url = format!("{base}&token={}", first["token"].as_str().unwrap());
    let posted = post_ndjson(&url, &[json!(["1", "1", "echo:lp", "phx_join", {}])]).await;
    assert_eq!(posted["status"], json!(200));
    let mut replied = false;
    while !replied {
        let polled = get_json(&url).await;
        replied = polled["messages"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m.as_str().unwrap().contains("phx_reply")));
    }
    let data = "x".repeat(PAYLOAD);
    // Three times 0.8 MB, each taken by a poll before the next: the
    // session goes through more than its cap and is not dropped.
    for round in 0..3 {
        broadcast_from(&mut ws, &jw, "echo:lp", &data, 4).await;
        let mut got = 0;
        while got < 4 {
            let polled = get_json(&url).await;
            assert_eq!(polled["status"], json!(200), "round {round}: {polled}");
            got += polled["messages"].as_array().unwrap().len();
        }
    }
    assert_eq!(server.metric("duet_slow_disconnects_total").await, 0);
    // 1.2 MB not taken: over the cap, dropped.
    broadcast_from(&mut ws, &jw, "echo:lp", &data, 6).await;
    assert_eq!(server.metric("duet_slow_disconnects_total").await, 1);
    assert_eq!(get_json(&url).await["status"], json!(410));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut c = server.connect(&token).await;
    c.join("echo:a", json!({})).await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(c.closed().await, Some(1001));
    stopping.await.unwrap();
}

#[tokio::test]
async fn longpoll_session_join_and_push() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let base = format!("{}?vsn=2.0.0&token={token}", server.url("/socket/longpoll"));
    let refused = get_json(&server.url("/socket/longpoll?vsn=2.0.0&token=bad")).await;
    assert_eq!(refused["status"], json!(403));
    let first = get_json(&format!("{base}&")).await;
    assert_eq!(first["status"], json!(410));
    let session = first["token"].as_str().unwrap().to_owned();
    let url = format!("{base}&token={session}");
    let frames = [
        json!(["1", "1", "echo:lp", "phx_join", {}]),
        json!(["1", "2", "echo:lp", "ping", {"hello": "lp"}]),
    ];
    let posted = post_ndjson(&url, &frames).await;
    assert_eq!(posted["status"], json!(200));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let polled = get_json(&url).await;
        assert_eq!(polled["status"], json!(200), "{polled}");
        for m in polled["messages"].as_array().unwrap() {
            seen.push(serde_json::from_str::<Value>(m.as_str().unwrap()).unwrap());
        }
    }
    assert_eq!(seen[0][4]["status"], json!("ok"));
    assert_eq!(
        seen[1],
        json!(["1", "2", "echo:lp", "phx_reply", {"status": "ok", "response": {"hello": "lp"}}])
    );
    let gone = get_json(&format!("{base}&token=lp_unknown")).await;
    assert_eq!(gone["status"], json!(410));
    let _ = Received::Closed(None);
}
