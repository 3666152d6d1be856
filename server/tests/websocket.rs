//! The WebSocket layer byte by byte, with a raw TCP client: the handshake
//! and its refusals, pings, fragmented messages, and the close codes of
//! frames that break RFC 6455 (1002, 1007) or the size limit (1009).

mod common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xFFFF => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A raw connection past the handshake.
struct Raw {
    tcp: TcpStream,
}

impl Raw {
    async fn open(server: &TestServer, token: &str, extra_headers: &str) -> (TcpStream, String) {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let req = format!(
            "GET /socket/websocket?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: {}\r\n{extra_headers}\r\n",
            server.addr
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tcp.read(&mut byte).await.unwrap();
            assert_eq!(n, 1, "connection closed during the handshake");
            head.push(byte[0]);
        }
        (tcp, String::from_utf8(head).unwrap())
    }

    async fn connect(server: &TestServer, token: &str) -> Raw {
        let (tcp, head) = Raw::open(
            server,
            token,
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        Raw { tcp }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The next server frame: (opcode, payload); None at end of stream.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let mut h = [0u8; 2];
            self.tcp.read_exact(&mut h).await.ok()?;
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            let len = match h[1] & 0x7F {
                126 => {
                    let mut b = [0u8; 2];
                    self.tcp.read_exact(&mut b).await.ok()?;
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.tcp.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.tcp.read_exact(&mut payload).await.ok()?;
            Some((h[0] & 0x0F, payload))
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a frame within 5 s")
    }

    /// Reads until the server's close frame; returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self.next().await {
                Some((0x8, p)) => return u16::from_be_bytes([p[0], p[1]]),
                Some(_) => continue,
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}

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
