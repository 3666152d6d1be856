//! The server's timers on tokio's paused clock: once a test has set up what
//! needs the database, `tokio::time::pause()` makes the server's sleeps and
//! intervals run on virtual time, which jumps ahead whenever everything
//! waits. Seconds of timeouts take milliseconds, and the times are exact.

mod common;

use std::time::Duration;

use common::{Received, TestServer};
use serde_json::{json, Value};
use tokio::time::Instant;

/// A `presence_diff` whose joins hold a meta of `user` with `typing`
/// (a diff may hold the same user's metas before and after a change).
fn typing(v: &Value, user: &str, typing: bool) -> bool {
    v[3] == json!("presence_diff")
        && v[4]["joins"][user]["metas"]
            .as_array()
            .is_some_and(|metas| metas.iter().any(|m| m["typing"] == json!(typing)))
}

/// `typing` falls back to false by itself 3 s after the last edit (CONTRACT §3).
#[tokio::test]
async fn typing_falls_back_to_false_three_seconds_after_the_last_edit() {
    let server = TestServer::start().await;
    let (ta, ua) = server.sign_in("Sophie").await;
    let (tb, _) = server.sign_in("Antoin").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    let mut b = server.connect(&tb).await;
    let (ja, _) = a.join(&topic, json!({})).await;
    b.join(&topic, json!({})).await;
    tokio::time::pause();
    let edited = Instant::now();
    a.push(
        Some(&ja),
        &topic,
        "response:update",
        json!({"response": "print(2)"}),
    )
    .await;
    b.expect(|v| typing(v, &ua, true)).await;
    // A second edit 2 s later moves the fallback to 3 s after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.push(
        Some(&ja),
        &topic,
        "response:update",
        json!({"response": "print(3)"}),
    )
    .await;
    b.expect(|v| typing(v, &ua, false)).await;
    let after = edited.elapsed();
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_millis(5300),
        "typing cleared {after:?} after the first edit"
    );
}

/// A socket silent for the idle timeout (60 s) is closed; a heartbeat
/// now and then keeps it open (CONTRACT §2).
#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout_and_heartbeats_keep_it() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Quiet").await;
    let mut beating = server.connect(&token).await;
    let mut silent = server.connect(&token).await;
    tokio::time::pause();
    let start = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(40)).await;
        let r = beating.push(None, "phoenix", "heartbeat", json!({})).await;
        assert_eq!(beating.reply(&r).await[4]["status"], "ok");
    }
    // 120 s on, the heartbeats kept one open; the other closed at 60 s.
    let closed = tokio::time::timeout(Duration::from_secs(1), silent.recv())
        .await
        .expect("the silent socket was closed");
    assert!(matches!(closed, Received::Closed(_)), "{closed:?}");
    let r = beating.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(beating.reply(&r).await[4]["status"], "ok");
    assert!(start.elapsed() >= Duration::from_secs(120));
}
