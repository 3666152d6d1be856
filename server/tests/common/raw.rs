//! A raw WebSocket client over TCP, byte by byte: client frames built by
//! hand (masked or not, any header bits) and server frames read as they
//! come, for tests of the RFC 6455 layer itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestServer;

/// The mask of every client frame built here.
pub const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A client frame: `first` is the whole first byte (FIN, RSV bits and
/// opcode), the length is encoded minimally.
pub fn frame_with(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![first];
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

/// A client frame with FIN set or not.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    frame_with(if fin { 0x80 } else { 0 } | opcode, payload, masked)
}

/// A connection past the handshake.
pub struct Raw {
    pub tcp: TcpStream,
}

impl Raw {
    /// Sends the upgrade request with `extra_headers`; returns the stream
    /// and the response head.
    pub async fn open(
        server: &TestServer,
        token: &str,
        extra_headers: &str,
    ) -> (TcpStream, String) {
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

    pub async fn connect(server: &TestServer, token: &str) -> Raw {
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

    pub async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Sends without failing: the server may already have closed.
    pub async fn try_send(&mut self, bytes: &[u8]) {
        let _ = self.tcp.write_all(bytes).await;
    }

    /// The next server frame: (opcode, payload); None at end of stream (or
    /// a reset). Panics when nothing comes within 5 s.
    pub async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        self.next_within(Duration::from_secs(5)).await
    }

    /// [`Raw::next`] with a deadline of `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        self.try_next(wait)
            .await
            .unwrap_or_else(|_| panic!("no frame and no end of stream within {wait:?}"))
    }

    /// The next server frame, None at end of stream; `Err` when nothing
    /// comes within `wait`.
    pub async fn try_next(
        &mut self,
        wait: Duration,
    ) -> Result<Option<(u8, Vec<u8>)>, tokio::time::error::Elapsed> {
        let read = async {
            let mut h = [0u8; 2];
            self.tcp.read_exact(&mut h).await.ok()?;
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            assert_eq!(h[0] & 0xF0, 0x80, "server frames are final, no RSV bits");
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
        tokio::time::timeout(wait, read).await
    }

    /// Reads until the server's close frame; returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next().await {
                Some((0x8, p)) => return u16::from_be_bytes([p[0], p[1]]),
                Some(_) => continue,
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}
