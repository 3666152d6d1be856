//! What an idle socket costs, as tests: the invariants behind the README's
//! "7.2 KiB per idle joined socket" (docs/BENCHMARKS.md, "Memory") that
//! otherwise live only in comments.
//!
//! The heap is counted by a global allocator that tracks the bytes live in
//! this test process; the server runs in it, the clients are blocking
//! `std::net::TcpStream`s (no heap of their own). What can be asserted
//! honestly this way:
//! - the heap of N idle joined sockets, per socket, stays under a ceiling
//!   (requested bytes, not the allocator's size classes or the kernel's
//!   socket buffers, so it is below the RSS figure of BENCHMARKS);
//! - after a 512 KiB message in and a 512 KiB reply out on every socket,
//!   the idle sockets hold no more heap than before: no read buffer (the
//!   decoder keeps bytes only while a frame is incomplete) and no write
//!   buffer (frames are written from their payloads) outlives the traffic.
//!   tungstenite would keep its read buffer (128 KiB since 0.25).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Idle sockets measured: enough that a few stray allocations elsewhere in
/// the process (a timer wheel level, a log line) vanish in the average.
const SOCKETS: usize = 200;
/// Heap per idle socket joined to one `echo:*` channel that has had one
/// message, in requested bytes: 4 106 when measured (the connection task
/// with its 1 032-byte future and tokio's task header, the channel task,
/// two mailboxes and their rings of slots, the `Socket`, the PubSub entry,
/// tokio's I/O registration); 4 400–4 500 while the connection future was
/// 1 352 bytes. A read or write buffer kept per socket (8 KiB and more)
/// would break it at once.
const HEAP_PER_IDLE_SOCKET: usize = 4_352;
/// What an idle socket may hold more after traffic than before it, on
/// average: 3–4 bytes when measured (the process's own noise spread over
/// the sockets). A decoder that kept its carry after the 512 KiB message
/// made it 1 MiB.
const AFTER_TRAFFIC_SLACK: usize = 64;
/// The size of the message sent, and echoed, on every socket.
const BIG: usize = 512 << 10;

#[test]
fn an_idle_websocket_holds_no_read_or_write_buffer() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start());
    let (token, _) = rt.block_on(server.sign_in("Ada"));
    // One socket through the whole cycle first: lazily made state (slab
    // pages, thread-locals, the router's first lookup) is not per socket.
    let mut warm = Ws::open(&server, &token, "echo:warm");
    warm.ping(BIG);
    let before = settled();
    let mut sockets: Vec<Ws> = (0..SOCKETS)
        .map(|i| {
            let mut ws = Ws::open(&server, &token, &format!("echo:idle{i}"));
            // A first message: the channel's inbox makes its small ring of
            // slots, which the mailbox keeps by design (up to 64 slots).
            ws.ping(16);
            ws
        })
        .collect();
    let idle = settled();
    let per_socket = idle.saturating_sub(before) / SOCKETS;
    assert!(
        per_socket <= HEAP_PER_IDLE_SOCKET,
        "an idle joined socket holds {per_socket} heap bytes (ceiling {HEAP_PER_IDLE_SOCKET}); \
         see docs/BENCHMARKS.md"
    );
    for ws in &mut sockets {
        ws.ping(BIG);
    }
    let after = settled();
    let kept = after.saturating_sub(idle) / SOCKETS;
    assert!(
        kept <= AFTER_TRAFFIC_SLACK,
        "after a {BIG}-byte message each way an idle socket holds {kept} bytes more \
         ({idle} -> {after} for {SOCKETS} sockets): a buffer outlived the traffic"
    );
    drop(sockets);
    drop(warm);
    rt.block_on(server.stop());
}

/// The live heap once the server has had time to finish what it was doing.
fn settled() -> usize {
    std::thread::sleep(Duration::from_millis(300));
    LIVE.load(Ordering::Relaxed)
}

/// A blocking WebSocket client joined to one topic.
struct Ws {
    tcp: TcpStream,
    topic: String,
    next_ref: u32,
}

impl Ws {
    fn open(server: &TestServer, token: &str, topic: &str) -> Ws {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET /socket/websocket?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: {}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        );
        tcp.write_all(req.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        let mut ws = Ws {
            tcp,
            topic: topic.to_owned(),
            next_ref: 0,
        };
        let reply = ws.push("phx_join", "{}".to_owned());
        assert!(reply.contains(r#""status":"ok""#), "{reply}");
        ws
    }

    /// A `ping` of `len` bytes of data, echoed back in the reply.
    fn ping(&mut self, len: usize) {
        let reply = self.push("ping", format!(r#"{{"data":"{}"}}"#, "x".repeat(len)));
        assert!(reply.len() > len && reply.contains(r#""status":"ok""#));
    }

    /// Pushes `event` and returns the text of the reply (the next frame).
    fn push(&mut self, event: &str, payload: String) -> String {
        self.next_ref += 1;
        let msg = format!(
            r#"["1","{}","{}","{event}",{payload}]"#,
            self.next_ref, self.topic
        );
        self.tcp.write_all(&masked_text(msg.as_bytes())).unwrap();
        let mut h = [0u8; 2];
        self.tcp.read_exact(&mut h).unwrap();
        assert_eq!(h[0], 0x81, "a final text frame");
        let len = match h[1] {
            126 => {
                let mut b = [0u8; 2];
                self.tcp.read_exact(&mut b).unwrap();
                usize::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.tcp.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => usize::from(n),
        };
        let mut body = vec![0u8; len];
        self.tcp.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }
}

/// A masked, final client text frame.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    f
}

/// The task every joined channel runs for its whole life; 736 bytes today
/// (docs/BENCHMARKS.md: 1 368 → 832 bytes when what only the join needs
/// was boxed away).
#[test]
fn a_channels_task_future_stays_small() {
    fn returned_size<A, B, R>(_: fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }
    const CEILING: usize = 800;
    let size = returned_size(
        duet::channels::channel::run::<duet::challenges::echo::EchoChannel> as fn(_, _) -> _,
    );
    assert!(
        size <= CEILING,
        "the channel future is {size} bytes (ceiling {CEILING}): see docs/BENCHMARKS.md"
    );
}
