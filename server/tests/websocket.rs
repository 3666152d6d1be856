//! The WebSocket layer byte by byte, with a raw TCP client: the handshake
//! and its refusals, pings, fragmented messages, and the close codes of
//! frames that break RFC 6455 (1002, 1007) or the size limit (1009).

mod common;

use common::raw::{frame, Raw};
use common::TestServer;

#[tokio::test]
async fn handshake_refusals_are_clear() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Ada").await;
    let (_, head) = Raw::open(&server, &token, "").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (_, head) = Raw::open(
        &server,
        &token,
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("sec-websocket-version: 13"));
    let (_, head) = Raw::open(
        &server,
        "bad-token",
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}

#[tokio::test]
async fn ping_pong_and_fragmented_messages() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Ada").await;
    let mut ws = Raw::connect(&server, &token).await;
    ws.send(&frame(true, 0x9, b"hi", true)).await;
    assert_eq!(ws.next().await, Some((0xA, b"hi".to_vec())));
    // A heartbeat in three fragments, a ping between them.
    let msg = br#"[null,"7","phoenix","heartbeat",{}]"#;
    let mut bytes = frame(false, 0x1, &msg[..10], true);
    bytes.extend(frame(true, 0x9, b"", true));
    bytes.extend(frame(false, 0x0, &msg[10..20], true));
    bytes.extend(frame(true, 0x0, &msg[20..], true));
    // Byte by byte: frames split anywhere still decode.
    for b in bytes {
        ws.send(&[b]).await;
    }
    assert_eq!(ws.next().await, Some((0xA, Vec::new())));
    let (op, reply) = ws.next().await.unwrap();
    assert_eq!(op, 0x1);
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply[1], "7");
    assert_eq!(reply[4]["status"], "ok");
    // The client's close is answered with its code.
    ws.send(&frame(true, 0x8, &1000u16.to_be_bytes(), true))
        .await;
    assert_eq!(ws.close_code().await, 1000);
}

#[tokio::test]
async fn broken_frames_close_with_their_codes() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let (token, _) = server.sign_in("Ada").await;
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(true, 0x1, b"[]", false), 1002),         // unmasked
        (frame(true, 0x3, b"", true), 1002),            // unknown opcode
        (frame(true, 0x0, b"x", true), 1002),           // stray continuation
        (frame(true, 0x1, &[0xC3, 0x28], true), 1007),  // not UTF-8
        (frame(true, 0x2, &vec![0; 5000], true), 1009), // over the limit
    ];
    for (bytes, code) in cases {
        let mut ws = Raw::connect(&server, &token).await;
        ws.send(&bytes).await;
        assert_eq!(ws.close_code().await, code, "{:02x?}", &bytes[..2]);
        // The handshake completes: our close is answered, then TCP ends.
        ws.send(&frame(true, 0x8, &code.to_be_bytes(), true)).await;
        assert_eq!(ws.next().await, None);
    }
    // The server still serves.
    let mut ws = Raw::connect(&server, &token).await;
    ws.send(&frame(
        true,
        0x1,
        br#"[null,"1","phoenix","heartbeat",{}]"#,
        true,
    ))
    .await;
    assert_eq!(ws.next().await.map(|f| f.0), Some(0x1));
}
