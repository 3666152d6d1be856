//! A differential property test of our RFC 6455 decoder
//! (`wsframe::Decoder`) against tungstenite's, acting as the server side
//! (`WebSocket::from_raw_socket`, `Role::Server`) over an in-memory stream,
//! with the same message and frame limit. Byte streams come from a seeded
//! generator: random bytes, structured frames (valid, and each kind of
//! violation), and structured streams with bytes flipped. Each stream is
//! fed to both in random chunk sizes; both must agree on the messages
//! delivered (text, binary, pings, pongs), on how the stream ends (open,
//! closed by the client with a code, refused) and on the close code class
//! of a refusal (1002, 1007, 1009).
//!
//! Where the two may differ, the test says why and asserts what RFC 6455
//! says:
//! - A frame cut short: we refuse a broken frame at its header, tungstenite
//!   once its payload is in (it checks the mask, the RSV bits and the
//!   control rules then). Both get the stream up to its last whole frame
//!   (see [`decidable`]); that our verdict on the whole stream only ever
//!   comes earlier is checked on our side alone.
//! - A length with its top bit set: RFC 6455 §5.2 says that bit MUST be 0,
//!   a framing error (we close with 1002); tungstenite reads it as a size
//!   and says 1009.
//! - Close code 1014 (Bad Gateway): registered with IANA after the RFC,
//!   which reserves 1000–2999 for such definitions (§7.4.2); tungstenite
//!   refuses it (it knows 1012 and 1013). We echo it.
//! - Everything else the RFC leaves open (which violation counts first when
//!   a frame has several; a close reason's UTF-8 before or after its code)
//!   our decoder does in tungstenite's order, so codes compare as they are.
//!   Non-minimal length encodings and an all-zero mask are accepted by both
//!   (the RFC binds senders to the minimal form and asks nothing of
//!   receivers).
//!
//! Seeds that once found a difference are kept in [`REGRESSIONS`]. A seed
//! stands for a stream through rand 0.8's `StdRng`: a rand upgrade changes
//! the streams (the sweep still tests as much; the kept seeds then stand
//! for other streams and should be found again).

use std::io::{self, Read, Write};

use duet::channels::transport::wsframe::{Decoder, Event, Violation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

/// The message and frame limit of both decoders: small, so that streams
/// over it are cheap to make.
const MAX: usize = 1000;
/// Streams generated per run: about 2 s in release on a busy 2-core box.
const STREAMS: u64 = 400_000;
/// The first seed of the sweep; change it to explore other streams.
const FIRST_SEED: u64 = 1;

/// Seeds that found a difference, with what it was (the decoder before
/// d6ffc27, and at d6ffc27). They run first.
const REGRESSIONS: &[(u64, &str)] = &[
    (17, "a pong answered after the text fragment that broke UTF-8, then 1002 for a later frame; \
          tungstenite refuses at that fragment with 1007 (before d6ffc27)"),
    (81, "a continuation that breaks UTF-8 refused only when the message ends (before d6ffc27)"),
    (913, "a first text fragment that is not UTF-8 left the connection waiting for the rest; \
           tungstenite: 1007 at once (before d6ffc27)"),
    (28, "an unmasked close with RSV bits declaring 59 299 bytes: we said 1002 (unmasked), \
          tungstenite 1009 (its size first); our checks follow its order now (before d6ffc27)"),
    (461, "a close, then a frame whose length has its top bit set, in one read: \
           our echo of the close became a 1002 (at d6ffc27)"),
    (374, "a close, then text that is not UTF-8, in one read: our echo became a 1007 (at d6ffc27)"),
    (1818, "a close, then a frame over the limit, in one read: our echo became a 1009 (at d6ffc27)"),
    (505, "close 1014, then a frame over the limit, in one read: 1009 instead of the echo (at d6ffc27)"),
    (99, "a close with code 4999, then a 1-byte close, in one read: 1002 on the whole stream, \
          4999 on its decidable part (at d6ffc27)"),
];

/// What a decoder made of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Waiting for more bytes.
    Open,
    /// The client closed; our close answers with this code (1000 for none).
    Closed(u16),
    /// The stream broke the protocol: the server closes with this code.
    Refused(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    msgs: Vec<Msg>,
    end: End,
}

// ---- Our decoder ------------------------------------------------------

fn ours(stream: &[u8], rng: &mut StdRng) -> Outcome {
    let mut decoder = Decoder::new(MAX);
    let mut msgs = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = chunk_size(rng).min(stream.len() - at);
        let mut events = Vec::new();
        decoder.feed(&stream[at..at + n], &mut events);
        at += n;
        for event in events {
            match event {
                Event::Text(b) => msgs.push(Msg::Text(b.to_vec())),
                Event::Binary(b) => msgs.push(Msg::Binary(b.to_vec())),
                Event::Ping(b) => msgs.push(Msg::Ping(b.to_vec())),
                Event::Pong => msgs.push(Msg::Pong),
                Event::Close(code) => {
                    let end = match decoder.violation() {
                        Some(v) if v != Violation::Closing => End::Refused(v.code().as_u16()),
                        _ => End::Closed(code.map_or(1000, |c| c.as_u16())),
                    };
                    return Outcome { msgs, end };
                }
            }
        }
        if let Some(v) = decoder.violation() {
            return Outcome {
                msgs,
                end: End::Refused(v.code().as_u16()),
            };
        }
    }
    Outcome {
        msgs,
        end: End::Open,
    }
}

/// Chunks of 1 to 64 bytes mostly, sometimes up to 2 000.
fn chunk_size(rng: &mut StdRng) -> usize {
    if rng.gen_bool(0.8) {
        rng.gen_range(1..=64)
    } else {
        rng.gen_range(1..=2000)
    }
}

// ---- tungstenite ------------------------------------------------------

/// An in-memory connection: reads come in random chunks, then
/// `WouldBlock` (more may come, as on a real socket); writes are kept.
struct Mem {
    input: Vec<u8>,
    at: usize,
    rng: StdRng,
    written: Vec<u8>,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = chunk_size(&mut self.rng)
            .min(buf.len())
            .min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn theirs(stream: &[u8], rng: StdRng) -> Outcome {
    let mem = Mem {
        input: stream.to_vec(),
        at: 0,
        rng,
        written: Vec::new(),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX))
        .max_frame_size(Some(MAX))
        .read_buffer_size(4096);
    let mut ws = WebSocket::from_raw_socket(mem, Role::Server, Some(config));
    let mut msgs = Vec::new();
    loop {
        let end = match ws.read() {
            Ok(Message::Text(t)) => {
                msgs.push(Msg::Text(t.as_bytes().to_vec()));
                continue;
            }
            Ok(Message::Binary(b)) => {
                msgs.push(Msg::Binary(b.to_vec()));
                continue;
            }
            Ok(Message::Ping(p)) => {
                msgs.push(Msg::Ping(p.to_vec()));
                continue;
            }
            Ok(Message::Pong(_)) => {
                msgs.push(Msg::Pong);
                continue;
            }
            Ok(Message::Close(None)) => End::Closed(1000),
            // tungstenite answers a code a client may not send with 1002,
            // and hands over its own 1002 instead: look at what was sent.
            Ok(Message::Close(Some(f))) => match first_close_code(stream) {
                Some(sent) if !CloseCode::from(sent).is_allowed() => End::Refused(1002),
                _ => End::Closed(f.code.into()),
            },
            Ok(Message::Frame(_)) => unreachable!("read never returns raw frames"),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => End::Open,
            Err(Error::Protocol(_)) => End::Refused(1002),
            Err(Error::Utf8(_)) => End::Refused(1007),
            Err(Error::Capacity(_)) => End::Refused(1009),
            Err(other) => panic!("tungstenite: unexpected {other:?}"),
        };
        return Outcome { msgs, end };
    }
}

// ---- What both can decide on -----------------------------------------

/// A frame header: (opcode, header length, declared payload length).
fn header_at(data: &[u8]) -> Option<(u8, usize, u64)> {
    let (b0, b1) = (*data.first()?, *data.get(1)?);
    let (len, mut at) = match b1 & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(data.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    if b1 & 0x80 != 0 {
        at += 4;
    }
    (data.len() >= at).then_some((b0 & 0x0F, at, len))
}

/// The code of the first close frame of `stream` (walking whole frames).
fn first_close_code(stream: &[u8]) -> Option<u16> {
    let mut at = 0;
    while let Some((opcode, header, len)) = header_at(&stream[at..]) {
        let payload = stream.get(at + header..at + header + usize::try_from(len).ok()?)?;
        if opcode == 0x8 {
            let masked = stream[at + 1] & 0x80 != 0;
            let mask: [u8; 4] = if masked {
                stream[at + header - 4..at + header].try_into().ok()?
            } else {
                [0; 4]
            };
            let code = payload.get(..2)?;
            return Some(u16::from_be_bytes([code[0] ^ mask[0], code[1] ^ mask[1]]));
        }
        at += header + payload.len();
    }
    None
}

/// The part of `stream` both decoders can decide on: its whole frames, up
/// to a frame both refuse at its header (a reserved opcode, or a length
/// over the limit) however much of it follows. A frame cut short is left
/// out: tungstenite waits for its payload before it looks at the rest.
fn decidable(stream: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Some((opcode, header, len)) = header_at(&stream[at..]) {
        if matches!(opcode, 3..=7 | 11..=15) || len > MAX as u64 {
            return stream;
        }
        let end = at + header + len as usize;
        if end > stream.len() {
            break;
        }
        at = end;
    }
    &stream[..at]
}

/// The declared length of the first frame over the limit, if the stream
/// gets to one (the frame where both stop at the header).
fn first_oversize(stream: &[u8]) -> Option<u64> {
    let mut at = 0;
    while let Some((opcode, header, len)) = header_at(&stream[at..]) {
        if matches!(opcode, 3..=7 | 11..=15) {
            return None;
        }
        if len > MAX as u64 {
            return Some(len);
        }
        at += header + len as usize;
        if at > stream.len() {
            return None;
        }
    }
    None
}

/// Why `a` (ours) and `b` (tungstenite) may differ on `stream`, if RFC
/// 6455 allows it (see the module's comment); None: they must not.
fn allowed_difference(a: &Outcome, b: &Outcome, stream: &[u8]) -> Option<&'static str> {
    if a.msgs != b.msgs {
        return None;
    }
    match (a.end, b.end) {
        (End::Refused(1002), End::Refused(1009))
            if first_oversize(stream).is_some_and(|len| len > i64::MAX as u64) =>
        {
            Some("a length with its top bit set: RFC 6455 §5.2 makes it a framing error (1002)")
        }
        (End::Closed(1014), End::Refused(1002)) => {
            Some("close code 1014 is registered with IANA; tungstenite does not know it")
        }
        _ => None,
    }
}

// ---- Generated streams ------------------------------------------------

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How one frame is encoded.
#[derive(Clone, Copy)]
struct Enc {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
}

fn enc(fin: bool, opcode: u8) -> Enc {
    Enc {
        fin,
        rsv: 0,
        opcode,
        masked: true,
    }
}

/// One client frame: the length in its minimal form mostly, in a longer
/// one sometimes (legal); a random mask, all zero sometimes (legal).
fn frame(rng: &mut StdRng, e: Enc, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let minimal = match n {
        0..=125 => 0,
        126..=0xFFFF => 1,
        _ => 2,
    };
    let form = if rng.gen_bool(0.85) {
        minimal
    } else {
        rng.gen_range(minimal..=2)
    };
    let mut f = vec![if e.fin { 0x80 } else { 0 } | (e.rsv << 4) | e.opcode];
    let m = if e.masked { 0x80 } else { 0 };
    match form {
        0 => f.push(m | n as u8),
        1 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if !e.masked {
        f.extend_from_slice(payload);
        return f;
    }
    let mask: [u8; 4] = if rng.gen_bool(0.1) { [0; 4] } else { rng.gen() };
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

/// Valid UTF-8 of up to `max` bytes, with characters of every length.
fn utf8(rng: &mut StdRng, max: usize) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        " ",
        "{",
        "\0",
        "é",
        "ß",
        "€",
        "κόσμε",
        "\u{FEFF}",
        "\u{FFFF}",
        "😀",
        "\u{10FFFF}",
    ];
    let target = if rng.gen_bool(0.9) {
        rng.gen_range(0..=max.min(100))
    } else {
        rng.gen_range(max.saturating_sub(8)..=max)
    };
    let mut s = Vec::new();
    loop {
        let piece = PIECES[rng.gen_range(0..PIECES.len())].as_bytes();
        if s.len() + piece.len() > target {
            return s;
        }
        s.extend_from_slice(piece);
    }
}

fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = if rng.gen_bool(0.9) {
        rng.gen_range(0..=max.min(100))
    } else {
        rng.gen_range(max.saturating_sub(8)..=max)
    };
    (0..n).map(|_| rng.gen()).collect()
}

/// A data message as 1 to 5 frames cut at random bytes (inside
/// characters too), sometimes with a ping or pong between fragments.
fn message(rng: &mut StdRng, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let pieces = if rng.gen_bool(0.5) {
        1
    } else {
        rng.gen_range(2..=5)
    };
    let mut cuts: Vec<usize> = (1..pieces)
        .map(|_| rng.gen_range(0..=payload.len()))
        .collect();
    cuts.sort_unstable();
    let bounds: Vec<usize> = [vec![0], cuts, vec![payload.len()]].concat();
    for i in 0..pieces {
        let fin = i + 1 == pieces;
        let op = if i == 0 { opcode } else { CONT };
        out.extend(frame(rng, enc(fin, op), &payload[bounds[i]..bounds[i + 1]]));
        if !fin && rng.gen_bool(0.2) {
            out.extend(control(rng));
        }
    }
}

fn control(rng: &mut StdRng) -> Vec<u8> {
    let op = if rng.gen_bool(0.7) { PING } else { PONG };
    let payload = bytes(rng, 125);
    frame(rng, enc(true, op), &payload)
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

/// A valid close: no payload, or a code a client may send and a reason.
fn valid_close(rng: &mut StdRng) -> Vec<u8> {
    const CODES: &[u16] = &[
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4999,
    ];
    if rng.gen_bool(0.2) {
        return frame(rng, enc(true, CLOSE), b"");
    }
    let code = CODES[rng.gen_range(0..CODES.len())];
    let reason = utf8(rng, 30);
    frame(rng, enc(true, CLOSE), &close_payload(code, &reason))
}

/// 1 to 6 frames: messages, pings and pongs, a close now and then, and a
/// violation about a third of the time.
fn structured(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..=6) {
        match rng.gen_range(0..12) {
            0..=3 => {
                let payload = utf8(rng, MAX);
                message(rng, TEXT, &payload, &mut out);
            }
            4 | 5 => {
                let payload = bytes(rng, MAX);
                message(rng, BINARY, &payload, &mut out);
            }
            6 | 7 => out.extend(control(rng)),
            8 => out.extend(valid_close(rng)),
            _ => violation(rng, &mut out),
        }
    }
    out
}

/// One violation of RFC 6455 (or of the size limit), of each kind in turn.
fn violation(rng: &mut StdRng, out: &mut Vec<u8>) {
    let kind = rng.gen_range(0..16);
    if kind >= 8 {
        return payload_violation(rng, kind, out);
    }
    let any_op = [TEXT, BINARY, PING, PONG, CLOSE][rng.gen_range(0..5)];
    let control_op = [PING, PONG, CLOSE][rng.gen_range(0..3)];
    let data_op = [TEXT, BINARY][rng.gen_range(0..2)];
    let (fin, rsv): (bool, u8) = (rng.gen(), rng.gen_range(1..=7));
    let small = bytes(rng, 20);
    let f = match kind {
        0 => frame(
            rng,
            Enc {
                masked: false,
                ..enc(true, any_op)
            },
            &small,
        ),
        1 => frame(
            rng,
            Enc {
                rsv,
                ..enc(true, any_op)
            },
            &small,
        ),
        2 => {
            let op = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15][rng.gen_range(0..10)];
            let payload = bytes(rng, 200);
            frame(rng, enc(fin, op), &payload)
        }
        3 => {
            // A fragmented control frame, and the continuation after it.
            let mut f = frame(rng, enc(false, control_op), &small);
            f.extend(frame(rng, enc(true, CONT), &small));
            f
        }
        4 => {
            let big = close_payload(1000, &vec![b'x'; rng.gen_range(124..=300)]);
            frame(rng, enc(true, control_op), &big)
        }
        5 => frame(rng, enc(fin, CONT), &small),
        6 => {
            // A new data frame inside a fragmented message.
            let mut f = frame(rng, enc(false, TEXT), b"abc");
            f.extend(frame(rng, enc(fin, data_op), &small));
            f
        }
        _ => {
            let mut f = Vec::new();
            let text = not_utf8(rng);
            message(rng, TEXT, &text, &mut f);
            f
        }
    };
    out.extend(f);
}

/// Text with a sequence that is not UTF-8 put between two characters.
fn not_utf8(rng: &mut StdRng) -> Vec<u8> {
    const BAD: &[&[u8]] = &[
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"\xff",
        b"\x80",
        b"\xf8\x88\x80\x80\x80",
    ];
    let mut text = utf8(rng, 60);
    let at = rng.gen_range(0..=text.len());
    let at = (0..=at)
        .rev()
        .find(|&i| std::str::from_utf8(&text[..i]).is_ok())
        .unwrap_or(0);
    let bad = BAD[rng.gen_range(0..BAD.len())];
    text.splice(at..at, bad.iter().copied());
    text
}

/// Violations in a payload: close codes and reasons, a cut character at
/// the end of a text, sizes over the limit.
fn payload_violation(rng: &mut StdRng, kind: u32, out: &mut Vec<u8>) {
    const BAD_CODES: &[u16] = &[
        0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ];
    const CUT: &[&[u8]] = &[b"\xe2\x82", b"\xc3", b"\xf0\x9f\x98"];
    let data_op = [TEXT, BINARY][rng.gen_range(0..2)];
    let f = match kind {
        8 => {
            let code = if rng.gen_bool(0.8) {
                BAD_CODES[rng.gen_range(0..BAD_CODES.len())]
            } else {
                rng.gen()
            };
            frame(rng, enc(true, CLOSE), &close_payload(code, b""))
        }
        9 => {
            let one: u8 = rng.gen();
            frame(rng, enc(true, CLOSE), &[one])
        }
        10 => frame(
            rng,
            enc(true, CLOSE),
            &close_payload(1000, b"ok\xed\xa0\x80"),
        ),
        11 => {
            // A message ending inside a character.
            let text = [utf8(rng, 40), CUT[rng.gen_range(0..CUT.len())].to_vec()].concat();
            let mut f = Vec::new();
            message(rng, TEXT, &text, &mut f);
            f
        }
        12 => {
            let payload = vec![b'x'; rng.gen_range(MAX + 1..=MAX + 40)];
            frame(rng, enc(true, data_op), &payload)
        }
        13 => {
            // Over the limit across fragments, each under it.
            let payload = vec![b'y'; rng.gen_range(MAX + 1..=MAX + 100)];
            let mut f = frame(rng, enc(false, data_op), &payload[..MAX / 2]);
            f.extend(frame(rng, enc(true, CONT), &payload[MAX / 2..]));
            f
        }
        14 => {
            // Only a header, declaring a huge length (its top bit set or not).
            let len: u64 = if rng.gen_bool(0.5) {
                rng.gen::<u64>() | (1 << 63)
            } else {
                rng.gen_range(MAX as u64 + 1..1 << 40)
            };
            [&[0x82, 0xFF][..], &len.to_be_bytes(), &[1, 2, 3, 4]].concat()
        }
        _ => frame(rng, enc(true, CLOSE), &close_payload(1014, b"")),
    };
    out.extend(f);
}

/// A structured stream with a few bytes flipped, replaced, added or cut.
fn mutated(rng: &mut StdRng) -> Vec<u8> {
    let mut s = structured(rng);
    for _ in 0..rng.gen_range(1..=4) {
        if s.is_empty() {
            break;
        }
        let i = rng.gen_range(0..s.len());
        match rng.gen_range(0..4) {
            0 => s[i] ^= 1 << rng.gen_range(0..8),
            1 => s[i] = rng.gen(),
            2 => s.insert(i, rng.gen()),
            _ => {
                s.remove(i);
            }
        }
    }
    s
}

/// The stream of `seed`: random bytes, a mutated or a structured stream.
fn stream_of(seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    match seed % 4 {
        0 => {
            let n = rng.gen_range(0..=64);
            (0..n).map(|_| rng.gen()).collect()
        }
        1 => mutated(&mut rng),
        _ => structured(&mut rng),
    }
}

/// A stream in hex, cut after 300 bytes.
fn hex(stream: &[u8]) -> String {
    let shown: String = stream
        .iter()
        .take(300)
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = stream.len().saturating_sub(300);
    if more > 0 {
        format!("{shown}… ({more} more bytes)")
    } else {
        shown
    }
}

// ---- The property -----------------------------------------------------

/// Compares both decoders on the stream of `seed`; returns tungstenite's
/// outcome and, when they differ as the RFC allows, why.
fn check(seed: u64) -> Result<(Outcome, Option<&'static str>), String> {
    let stream = stream_of(seed);
    let part = decidable(&stream);
    let a = ours(part, &mut StdRng::seed_from_u64(seed ^ 0xA5A5));
    let b = theirs(part, StdRng::seed_from_u64(seed ^ 0x5A5A));
    let allowed = if a == b {
        None
    } else {
        let why = allowed_difference(&a, &b, part);
        if why.is_none() {
            return Err(format!(
                "seed {seed}: stream {}\n  ours:        {a:?}\n  tungstenite: {b:?}",
                hex(part)
            ));
        }
        why
    };
    // On the whole stream (a frame cut short at its end) ours sees the
    // same, or refuses at that frame's header.
    let full = ours(&stream, &mut StdRng::seed_from_u64(seed ^ 0x3C3C));
    let same_or_earlier = full.msgs == a.msgs
        && (full.end == a.end || (a.end == End::Open && matches!(full.end, End::Refused(_))));
    if !same_or_earlier {
        return Err(format!(
            "seed {seed}: the whole stream {}\n  gives {full:?}\n  its decidable part {a:?}",
            hex(&stream)
        ));
    }
    Ok((b, allowed))
}

#[test]
fn seeds_that_found_differences_agree_now() {
    for &(seed, what) in REGRESSIONS {
        if let Err(e) = check(seed) {
            panic!("regression ({what}): {e}");
        }
    }
}

#[test]
fn our_decoder_agrees_with_tungstenite_on_generated_streams() {
    let mut failures = Vec::new();
    let mut ends = std::collections::BTreeMap::<String, usize>::new();
    let mut allowed = std::collections::BTreeMap::<&str, usize>::new();
    for seed in FIRST_SEED..FIRST_SEED + STREAMS {
        match check(seed) {
            Ok((theirs, why)) => {
                let end = match theirs.end {
                    End::Closed(_) => "Closed".to_owned(),
                    other => format!("{other:?}"),
                };
                *ends.entry(end).or_default() += 1;
                if let Some(why) = why {
                    *allowed.entry(why).or_default() += 1;
                }
            }
            Err(e) if failures.len() < 10 => failures.push(e),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "the decoders differ:\n{}",
        failures.join("\n")
    );
    // The generator reaches every outcome (so a change to it cannot quietly
    // stop testing one).
    for end in [
        "Open",
        "Closed",
        "Refused(1002)",
        "Refused(1007)",
        "Refused(1009)",
    ] {
        let n = ends.get(end).copied().unwrap_or(0);
        assert!(
            n as u64 >= STREAMS / 100,
            "only {n} streams end {end}: {ends:?}"
        );
    }
    println!("outcomes: {ends:?}\nallowed differences: {allowed:?}");
}
