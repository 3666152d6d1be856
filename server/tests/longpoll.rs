//! The long-poll transport against a real server: a client that stops
//! polling leaves presence within a second (tokio's paused clock: the
//! server's timers run on virtual time once the session is set up).

mod common;

use common::{get_json, post_ndjson, TestServer};
use serde_json::{json, Value};

fn is_event(v: &Value, event: &str) -> bool {
    v[3] == json!(event)
}

/// A long-poll client that stops polling (crashed between two polls: no
/// request is left open for the server to see close) leaves presence within
/// about a second, as a closed WebSocket does, not after the poll window.
#[tokio::test]
async fn a_long_poll_client_that_stops_polling_leaves_presence_within_a_second() {
    let server = TestServer::start().await;
    let (ta, _) = server.sign_in("Sophie").await;
    let (tb, ub) = server.sign_in("Antoin").await;
    let id = server.create_challenge(&ta).await;
    let topic = format!("challenges:{id}");
    let mut a = server.connect(&ta).await;
    a.join(&topic, json!({})).await;

    let base = format!("{}?vsn=2.0.0&token={tb}", server.url("/socket/longpoll"));
    let first = get_json(&base).await;
    assert_eq!(first["status"], json!(410));
    let url = format!("{base}&token={}", first["token"].as_str().unwrap());
    let posted = post_ndjson(&url, &[json!(["1", "1", &topic, "phx_join", {}])]).await;
    assert_eq!(posted["status"], json!(200));
    // Polls until the join is answered, then stops.
    loop {
        let polled = get_json(&url).await;
        let replied = polled["messages"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m.as_str().unwrap().contains("phx_reply")));
        if replied {
            break;
        }
    }
    // From here on the server's timers run on virtual time (nothing
    // below needs the database).
    tokio::time::pause();
    let stopped = tokio::time::Instant::now();
    a.expect(|v| is_event(v, "presence_diff") && v[4]["joins"].get(&ub).is_some())
        .await;
    a.expect(|v| is_event(v, "presence_diff") && v[4]["leaves"].get(&ub).is_some())
        .await;
    let left_after = stopped.elapsed();
    assert!(
        left_after >= std::time::Duration::from_millis(700)
            && left_after < std::time::Duration::from_millis(1200),
        "left {left_after:?} after its last poll"
    );
    tokio::time::resume();
    // Its next poll finds the session gone, and phoenix.js starts anew.
    assert_eq!(get_json(&url).await["status"], json!(410));
}
