//! The HTTP server against hostile clients (the hardening review's D4, D6
//! and risks 3–4), over raw TCP: a request head that never ends, a
//! connection that sends nothing, one that idles between requests, a body
//! that stops, the per-address connection cap, long-poll POSTs that must be
//! refused before their body is read, and `check_origin` against DNS
//! rebinding. Timeouts are a second or two here.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::TestServer;
use duet::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Header and body timeouts of 1 s, keep-alive of 3 s.
fn short(c: &mut Config) {
    c.header_timeout_secs = 1;
    c.keepalive_secs = 3;
    c.body_timeout_secs = 1;
}

/// Reads until the server closes the connection: what it sent and when it
/// closed. Panics if it is still open after `limit`.
async fn until_closed(tcp: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?} (received {:?})",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head and its `Content-Length` body.
async fn response(tcp: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a response: {data:?}");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while data.len() < head_end + len {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed inside a body");
            data.extend_from_slice(&buf[..n]);
        }
        let status = head[9..12].parse().expect("status code");
        (status, head, data[head_end..head_end + len].to_vec())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a response within 5 s")
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(short).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (got, after) = until_closed(&mut tcp, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(short).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let (got, after) = until_closed(&mut tcp, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_does_not_earn_more_time() {
    let server = TestServer::start_with(short).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
        if tcp.write_all(&[*byte]).await.is_err() {
            break; // closed under us: what we want
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if start.elapsed() > Duration::from_secs(6) {
            panic!("the trickle was still accepted after 6 s");
        }
    }
    let (got, _) = until_closed(&mut tcp, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "closed only after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout_not_before() {
    let server = TestServer::start_with(short).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    tcp.write_all(get).await.unwrap();
    assert_eq!(response(&mut tcp).await.0, 200);
    // Longer than the header timeout: a kept-alive connection may wait.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    tcp.write_all(get).await.unwrap();
    assert_eq!(response(&mut tcp).await.0, 200, "served after 1.8 s idle");
    let (got, after) = until_closed(&mut tcp, Duration::from_secs(8)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        after >= Duration::from_millis(2500),
        "closed after {after:?}, before the 3 s keep-alive"
    );
}

#[tokio::test]
async fn websockets_and_waiting_polls_outlive_the_http_timeouts() {
    // A guard more than a fix: both worked before the timeouts existed.
    let server = TestServer::start_with(short).await;
    let (token, _) = server.sign_in("Sophie").await;
    let mut ws = server.connect(&token).await;
    let lp = server.url(&format!("/socket/longpoll?vsn=2.0.0&token={token}"));
    let session = common::get_json(&lp).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll_url = server.url(&format!("/socket/longpoll?vsn=2.0.0&token={session}"));
    let post_url = poll_url.clone();
    let poll = tokio::spawn(async move { common::get_json(&poll_url).await });
    // Longer than the header, body and keep-alive timeouts.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = ws.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.reply(&r).await[4]["status"], "ok");
    let posted =
        common::post_ndjson(&post_url, &[json!([null, "1", "phoenix", "heartbeat", {}])]).await;
    assert_eq!(posted["status"], 200);
    let answered = poll.await.unwrap();
    assert_eq!(answered["status"], 200, "{answered}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    let server = TestServer::start_with(short).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"first_name\"",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let (status, head, body) = response(&mut tcp).await;
    assert_eq!(status, 408, "{head}");
    assert!(json_body(&body)["error"].is_string());
    assert!(start.elapsed() >= Duration::from_millis(900));
    let (rest, _) = until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_long_poll_post_without_a_session_is_answered_before_its_body() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // 16 MiB announced, none sent: the answer must not wait for them.
    tcp.write_all(
        b"POST /socket/longpoll?vsn=2.0.0&token=lp_nosuchsession HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 16777216\r\n\r\n",
    )
    .await
    .unwrap();
    let (status, head, body) = response(&mut tcp).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(json_body(&body), json!({ "status": 410 }));
}

/// A long-poll session of a new user: (POST/poll URL).
async fn longpoll_session(server: &TestServer) -> String {
    let (token, _) = server.sign_in("Polly").await;
    let lp = server.url(&format!("/socket/longpoll?vsn=2.0.0&token={token}"));
    let session = common::get_json(&lp).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.url(&format!("/socket/longpoll?vsn=2.0.0&token={session}"))
}

/// A binary push (phoenix.js kind 0) of exactly `size` bytes.
fn binary_push(size: usize) -> Vec<u8> {
    let (join_ref, r, topic, event) = ("1", "2", "echo:big", "blob");
    let mut f = vec![
        0u8,
        join_ref.len() as u8,
        r.len() as u8,
        topic.len() as u8,
        event.len() as u8,
    ];
    for part in [join_ref, r, topic, event] {
        f.extend_from_slice(part.as_bytes());
    }
    f.resize(size, b'x');
    f
}

async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn long_poll_bodies_are_capped_at_twice_the_frame_limit() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let url = longpoll_session(&server).await;
    // A frame at the limit, base64 (4/3 of it), fits.
    let line = base64::engine::general_purpose::STANDARD.encode(binary_push(4096));
    let (status, body) = post_raw(&url, line.clone().into_bytes()).await;
    assert_eq!((status, &body), (200, &json!({ "status": 200 })));
    // Three of them (16 KiB) do not: 413 before a frame is handled.
    let three = [line.as_str(); 3].join("\n");
    let (status, body) = post_raw(&url, three.into_bytes()).await;
    assert_eq!((status, &body), (413, &json!({ "status": 413 })));
}

#[tokio::test]
async fn a_long_poll_body_that_stops_arriving_gets_408() {
    let server = TestServer::start_with(short).await;
    let url = longpoll_session(&server).await;
    let path = url.split_once(&server.addr.to_string()).unwrap().1;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n[null,"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (status, head, body) = response(&mut tcp).await;
    assert_eq!(status, 408, "{head}");
    assert_eq!(json_body(&body), json!({ "status": 408 }));
    let (rest, _) = until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(rest.is_empty());
}

/// Signs in on a connection of its own that is closed once answered (an
/// HTTP client's pool would keep it, and it would count against a cap).
async fn sign_in_and_close(server: &TestServer) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let body = r#"{"first_name":"Sophie"}"#;
    let req = format!(
        "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let (status, _, body) = response(&mut tcp).await;
    assert_eq!(status, 201);
    until_closed(&mut tcp, Duration::from_secs(3)).await;
    drop(tcp);
    // The server drops its end right after ours saw the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    json_body(&body)["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_addr = 3;
        c.limit_loopback = true;
    })
    .await;
    let token = sign_in_and_close(&server).await;
    // Upgraded sockets count: two of them and one plain connection.
    let mut ws = server.connect(&token).await;
    let _ws2 = server.connect(&token).await;
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut plain).await.0, 200);
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (got, after) = until_closed(&mut fourth, Duration::from_secs(2)).await;
    assert!(
        got.is_empty(),
        "the fourth was served: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(after < Duration::from_secs(1), "closed after {after:?}");
    // The sockets still work; once one closes, its place is free again.
    let r = ws.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.reply(&r).await[4]["status"], "ok");
    drop(ws);
    let mut served = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = TcpStream::connect(server.addr).await.unwrap();
        if again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .is_ok()
        {
            let (got, _) = until_closed(&mut again, Duration::from_secs(3)).await;
            if got.starts_with(b"HTTP/1.1 200") {
                served = Some(got);
                break;
            }
        }
    }
    assert!(served.is_some(), "no place freed by the closed socket");
}

#[tokio::test]
async fn loopback_clients_are_not_capped_by_default() {
    let server = TestServer::start_with(|c| c.max_connections_per_addr = 2).await;
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(response(&mut tcp).await.0, 200);
        open.push(tcp);
    }
}

/// A WebSocket handshake with these `Host` and `Origin` (raw bytes): the status.
async fn ws_handshake(server: &TestServer, token: &str, host: &str, origin: &[u8]) -> u16 {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut req = format!(
        "GET /socket/websocket?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: "
    )
    .into_bytes();
    req.extend_from_slice(origin);
    req.extend_from_slice(b"\r\n\r\n");
    tcp.write_all(&req).await.unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// A long-poll connect with these `Host` and `Origin`: the JSON status.
async fn longpoll_connect(server: &TestServer, token: &str, host: &str, origin: &[u8]) -> Value {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut req = format!(
        "GET /socket/longpoll?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: {host}\r\nOrigin: "
    )
    .into_bytes();
    req.extend_from_slice(origin);
    req.extend_from_slice(b"\r\n\r\n");
    tcp.write_all(&req).await.unwrap();
    let (_, _, body) = response(&mut tcp).await;
    json_body(&body)["status"].clone()
}

#[tokio::test]
async fn check_origin_refuses_dns_rebinding_other_schemes_and_unreadable_origins() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let port = server.addr.port();
    let own = format!("127.0.0.1:{port}");
    let evil = format!("evil.example:{port}");
    let cases: Vec<(&str, String, Vec<u8>, bool)> = vec![
        (
            "DNS rebinding",
            evil.clone(),
            format!("http://{evil}").into_bytes(),
            false,
        ),
        (
            "ftp scheme",
            own.clone(),
            format!("ftp://{own}").into_bytes(),
            false,
        ),
        (
            "obs-text",
            own.clone(),
            [format!("http://{own}").as_bytes(), b"\xe9"].concat(),
            false,
        ),
        ("null", own.clone(), b"null".to_vec(), false),
        (
            "own address",
            own.clone(),
            format!("http://{own}").into_bytes(),
            true,
        ),
        (
            "localhost",
            format!("localhost:{port}"),
            format!("http://localhost:{port}").into_bytes(),
            true,
        ),
        (
            "[::1]",
            own.clone(),
            format!("http://[::1]:{port}").into_bytes(),
            true,
        ),
    ];
    for (name, host, origin, ok) in cases {
        let status = ws_handshake(&server, &token, &host, &origin).await;
        assert_eq!(status, if ok { 101 } else { 403 }, "websocket, {name}");
        let status = longpoll_connect(&server, &token, &host, &origin).await;
        assert_eq!(
            status,
            json!(if ok { 410 } else { 403 }),
            "long-poll, {name}"
        );
    }
}
