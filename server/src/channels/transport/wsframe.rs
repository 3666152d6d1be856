//! RFC 6455 frames, server side, pure over bytes: [`Decoder`] turns what a
//! client sent into messages (unmasking, reassembling fragments, checking
//! UTF-8, opcodes, control frames and the size limit); [`header`] encodes
//! the header of an unmasked server frame.
//!
//! Why our own codec: an idle socket should hold no buffers at all. The
//! decoder keeps bytes only while a frame is incomplete, and frames are
//! written straight from their encoded payload (a header and the payload in
//! one `writev`), so there is no write buffer either.

use bytes::Bytes;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Longest header: 2 bytes, 8 of extended length (server frames are unmasked).
pub const MAX_HEADER: usize = 10;

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    /// The client's close, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why the connection must close, and with which status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// 1002: the bytes break the protocol.
    Protocol(&'static str),
    /// 1007: a text message (or close reason) that is not UTF-8.
    NotUtf8,
    /// 1009: a message over the size limit.
    TooBig,
    /// Not the client's fault: we are closing and only wait for its close.
    Closing,
}

impl Violation {
    pub fn code(self) -> u16 {
        match self {
            Violation::Protocol(_) => 1002,
            Violation::NotUtf8 => 1007,
            Violation::TooBig => 1009,
            Violation::Closing => 1000,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Violation::Protocol(why) => why,
            Violation::NotUtf8 => "invalid UTF-8 in a text message",
            Violation::TooBig => "frame too large",
            Violation::Closing => "closing",
        }
    }
}

/// The incremental frame decoder of one connection.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// Bytes of an incomplete frame, carried to the next read; empty (and
    /// unallocated) between frames.
    carry: Vec<u8>,
    /// A fragmented message being reassembled: its opcode and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
    /// Payload bytes of a frame being discarded (over the limit, or after a
    /// violation) still to come.
    skip: u64,
    /// The first violation; once set, only a `Close` is still reported.
    violation: Option<Violation>,
}

/// One parsed frame header.
struct Head {
    fin: bool,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    header_len: usize,
    payload_len: u64,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message,
            carry: Vec::new(),
            partial: None,
            skip: 0,
            violation: None,
        }
    }

    /// The first protocol violation seen, if any: the connection must close
    /// with its code.
    pub fn violation(&self) -> Option<Violation> {
        self.violation
    }

    /// From now on only a `Close` is reported; data is discarded unbuffered
    /// (we are closing and wait for the client's close).
    pub fn closing(&mut self) {
        if self.violation.is_none() {
            self.violation = Some(Violation::Closing);
        }
        self.partial = None;
    }

    /// Decodes what `input` completes; events are appended to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) {
        if self.skip > 0 {
            let n = (self.skip.min(input.len() as u64)) as usize;
            self.skip -= n as u64;
            input = &input[n..];
        }
        if input.is_empty() {
            return;
        }
        if self.carry.is_empty() {
            let used = self.parse(input, out);
            let rest = &input[used..];
            self.keep(rest);
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(input);
            let used = self.parse(&carry, out);
            if used < carry.len() {
                carry.drain(..used);
                self.carry = carry;
            }
        }
    }

    /// Keeps the unparsed tail of a read, after a skip it may start with.
    fn keep(&mut self, rest: &[u8]) {
        let n = (self.skip.min(rest.len() as u64)) as usize;
        self.skip -= n as u64;
        let rest = &rest[n..];
        if !rest.is_empty() {
            self.carry.extend_from_slice(rest);
        }
    }

    /// Parses whole frames from `data`; returns the bytes consumed. A frame
    /// being skipped consumes all that is there of it and sets `skip`.
    fn parse(&mut self, data: &[u8], out: &mut Vec<Event>) -> usize {
        let mut at = 0;
        loop {
            let rest = &data[at..];
            let Some(head) = parse_head(rest) else {
                return at;
            };
            if let Err(v) = self.check(&head) {
                self.fail(v);
            }
            let buffered =
                self.violation.is_none() || (head.opcode == OP_CLOSE && head.payload_len <= 125);
            let available = (rest.len() - head.header_len) as u64;
            if !buffered {
                // Discard the payload without keeping it.
                let take = head.payload_len.min(available);
                self.skip = head.payload_len - take;
                at += head.header_len + take as usize;
                if self.skip > 0 {
                    return data.len();
                }
                continue;
            }
            if available < head.payload_len {
                return at; // wait for the rest of the frame
            }
            let start = head.header_len;
            let end = start + head.payload_len as usize;
            let mut payload = rest[start..end].to_vec();
            unmask(&mut payload, head.mask);
            at += end;
            self.frame(head.fin, head.opcode, payload, out);
        }
    }

    /// Checks a header against the protocol and the size limit.
    fn check(&self, head: &Head) -> Result<(), Violation> {
        if !head.masked {
            return Err(Violation::Protocol("client frames must be masked"));
        }
        if head.payload_len > i64::MAX as u64 {
            // RFC 6455 §5.2: the most significant bit must be 0.
            return Err(Violation::Protocol("invalid payload length"));
        }
        match head.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len()) as u64;
                if head.payload_len > (self.max_message as u64).saturating_sub(so_far) {
                    return Err(Violation::TooBig);
                }
                Ok(())
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !head.fin || head.payload_len > 125 {
                    Err(Violation::Protocol("fragmented or oversized control frame"))
                } else {
                    Ok(())
                }
            }
            _ => Err(Violation::Protocol("unknown opcode")),
        }
    }

    fn fail(&mut self, v: Violation) {
        if self.violation.is_none() {
            self.violation = Some(v);
        }
        self.partial = None;
    }

    /// Handles one whole, unmasked frame.
    fn frame(&mut self, fin: bool, opcode: u8, payload: Vec<u8>, out: &mut Vec<Event>) {
        if self.violation.is_some() {
            if opcode == OP_CLOSE {
                out.push(Event::Close(close_code(&payload).ok().flatten()));
            }
            return;
        }
        match opcode {
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return self.fail(Violation::Protocol("expected a continuation frame"));
                }
                if fin {
                    self.message(opcode, payload, out);
                } else {
                    self.partial = Some((opcode, payload));
                }
            }
            OP_CONTINUATION => match self.partial.take() {
                None => self.fail(Violation::Protocol("continuation without a message")),
                Some((op, mut bytes)) => {
                    bytes.extend_from_slice(&payload);
                    if fin {
                        self.message(op, bytes, out);
                    } else {
                        self.partial = Some((op, bytes));
                    }
                }
            },
            OP_PING => out.push(Event::Ping(Bytes::from(payload))),
            OP_PONG => out.push(Event::Pong),
            OP_CLOSE => match close_code(&payload) {
                Ok(code) => out.push(Event::Close(code)),
                Err(v) => {
                    self.fail(v);
                    // The client is closing anyway: answer with our code.
                    out.push(Event::Close(None));
                }
            },
            _ => self.fail(Violation::Protocol("unknown opcode")),
        }
    }

    fn message(&mut self, opcode: u8, bytes: Vec<u8>, out: &mut Vec<Event>) {
        if opcode == OP_TEXT {
            if std::str::from_utf8(&bytes).is_err() {
                return self.fail(Violation::NotUtf8);
            }
            out.push(Event::Text(Bytes::from(bytes)));
        } else {
            out.push(Event::Binary(Bytes::from(bytes)));
        }
    }
}

/// The header at the start of `data`, if it is all there.
fn parse_head(data: &[u8]) -> Option<Head> {
    if data.len() < 2 {
        return None;
    }
    let (b0, b1) = (data[0], data[1]);
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut at) = match b1 & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(data.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mut mask = [0; 4];
    if masked {
        mask = data.get(at..at + 4)?.try_into().ok()?;
        at += 4;
    }
    Some(Head {
        fin: b0 & 0x80 != 0,
        // Reserved bits (no extension is negotiated) make the opcode invalid.
        opcode: if b0 & 0x70 != 0 { 0xFF } else { b0 & 0x0F },
        masked,
        mask,
        header_len: at,
        payload_len,
    })
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    if mask == [0; 4] {
        return;
    }
    // Eight bytes at a time; 8 is a multiple of 4, so the tail starts at
    // mask index 0 again.
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8])) ^ m;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The status code of a close payload: none, or a valid code (RFC 6455
/// §7.4) followed by a UTF-8 reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload.len() {
        0 => return Ok(None),
        1 => return Err(Violation::Protocol("close payload of one byte")),
        _ => {}
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !valid {
        return Err(Violation::Protocol("invalid close code"));
    }
    if std::str::from_utf8(&payload[2..]).is_err() {
        return Err(Violation::NotUtf8);
    }
    Ok(Some(code))
}

/// Writes the header of an unmasked, final server frame of `len` bytes into
/// `out`; returns its length.
pub fn header(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A whole close frame: code and reason (cut to fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut reason = &reason.as_bytes()[..reason.len().min(123)];
    while std::str::from_utf8(reason).is_err() {
        reason = &reason[..reason.len() - 1];
    }
    let mut frame = vec![0x80 | OP_CLOSE, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
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
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        f
    }

    fn decode_all(max: usize, bytes: &[u8]) -> (Vec<Event>, Option<Violation>) {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        d.feed(bytes, &mut out);
        (out, d.violation())
    }

    #[test]
    fn text_binary_ping_pong_close() {
        let mut bytes = client(true, OP_TEXT, b"hello");
        bytes.extend(client(true, OP_BINARY, &[1, 2, 3]));
        bytes.extend(client(true, OP_PING, b"p"));
        bytes.extend(client(true, OP_PONG, b""));
        bytes.extend(client(true, OP_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']));
        let (events, v) = decode_all(1024, &bytes);
        assert_eq!(v, None);
        assert_eq!(
            events,
            vec![
                Event::Text(Bytes::from_static(b"hello")),
                Event::Binary(Bytes::from_static(&[1, 2, 3])),
                Event::Ping(Bytes::from_static(b"p")),
                Event::Pong,
                Event::Close(Some(1000)),
            ]
        );
    }

    #[test]
    fn byte_by_byte_and_extended_lengths() {
        let long = vec![b'x'; 70_000];
        let medium = vec![b'y'; 300];
        let mut bytes = client(true, OP_TEXT, &medium);
        bytes.extend(client(true, OP_BINARY, &long));
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(d.violation(), None);
        assert_eq!(
            out,
            vec![Event::Text(medium.into()), Event::Binary(long.into())]
        );
        assert!(d.carry.capacity() == 0 || d.carry.is_empty());
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut bytes = client(false, OP_TEXT, b"hel");
        bytes.extend(client(true, OP_PING, b""));
        bytes.extend(client(false, OP_CONTINUATION, b"lo "));
        bytes.extend(client(true, OP_CONTINUATION, "wörld".as_bytes()));
        let (events, v) = decode_all(1024, &bytes);
        assert_eq!(v, None);
        assert_eq!(
            events,
            vec![
                Event::Ping(Bytes::new()),
                Event::Text(Bytes::from("hello wörld"))
            ]
        );
    }

    #[test]
    fn violations_have_their_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // unmasked
            (vec![0x81, 0x02, b'h', b'i'], 1002),
            // reserved bit
            (
                {
                    let mut f = client(true, OP_TEXT, b"x");
                    f[0] |= 0x40;
                    f
                },
                1002,
            ),
            (client(true, 0x3, b""), 1002),
            (client(false, OP_PING, b""), 1002),
            (client(true, OP_PING, &[0; 126]), 1002),
            (client(true, OP_CONTINUATION, b"x"), 1002),
            (
                {
                    let mut f = client(false, OP_TEXT, b"a");
                    f.extend(client(true, OP_TEXT, b"b"));
                    f
                },
                1002,
            ),
            (client(true, OP_TEXT, &[0xFF, 0xFE]), 1007),
            (client(true, OP_CLOSE, &[0x03]), 1002),
            (client(true, OP_CLOSE, &[0x03, 0xED]), 1002), // 1005 may not be sent
            (client(true, OP_TEXT, &[b'a'; 65]), 1009),
            (
                {
                    let mut f = client(false, OP_TEXT, &[b'a'; 40]);
                    f.extend(client(true, OP_CONTINUATION, &[b'a'; 40]));
                    f
                },
                1009,
            ),
        ];
        for (bytes, code) in cases {
            let (events, v) = decode_all(64, &bytes);
            assert_eq!(v.map(Violation::code), Some(code), "{bytes:02x?}");
            assert!(
                events.iter().all(|e| matches!(e, Event::Close(_))),
                "{events:?}"
            );
        }
    }

    #[test]
    fn oversized_frame_is_skipped_and_the_close_after_it_seen() {
        let mut bytes = client(true, OP_BINARY, &vec![7; 5000]);
        bytes.extend(client(true, OP_TEXT, b"ignored"));
        bytes.extend(client(true, OP_CLOSE, &[0x03, 0xE8]));
        let mut d = Decoder::new(1000);
        let mut out = Vec::new();
        for chunk in bytes.chunks(700) {
            d.feed(chunk, &mut out);
            // Nothing of the big frame is buffered.
            assert!(d.carry.len() < 20);
        }
        assert_eq!(d.violation(), Some(Violation::TooBig));
        assert_eq!(out, vec![Event::Close(Some(1000))]);
    }

    #[test]
    fn huge_declared_lengths_never_wrap_past_the_limit() {
        // A fragment, then a continuation declaring 2^64 - 1 bytes.
        let mut bytes = client(false, OP_TEXT, b"a");
        let mut cont = vec![OP_CONTINUATION, 0x80 | 127];
        cont.extend_from_slice(&u64::MAX.to_be_bytes());
        cont.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend(cont);
        let (_, v) = decode_all(1 << 20, &bytes);
        assert_eq!(v.map(Violation::code), Some(1002));
        let mut big = client(false, OP_TEXT, b"a");
        let mut cont = vec![OP_CONTINUATION, 0x80 | 127];
        cont.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        cont.extend_from_slice(&[1, 2, 3, 4]);
        big.extend(cont);
        let (_, v) = decode_all(1 << 20, &big);
        assert_eq!(v.map(Violation::code), Some(1009));
    }

    #[test]
    fn an_all_zero_mask_is_legal() {
        let bytes = [0x81, 0x82, 0, 0, 0, 0, b'o', b'k'];
        let (events, v) = decode_all(64, &bytes);
        assert_eq!(v, None);
        assert_eq!(events, vec![Event::Text(Bytes::from_static(b"ok"))]);
    }

    #[test]
    fn headers_and_close_frames() {
        let mut h = [0; MAX_HEADER];
        assert_eq!(header(OP_TEXT, 5, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 5]);
        assert_eq!(header(OP_BINARY, 300, &mut h), 4);
        assert_eq!(&h[..4], &[0x82, 126, 1, 44]);
        assert_eq!(header(OP_TEXT, 70_000, &mut h), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(
            close_frame(1009, "big"),
            vec![0x88, 5, 0x03, 0xF1, b'b', b'i', b'g']
        );
        assert_eq!(close_frame(1000, &"é".repeat(100)).len(), 2 + 2 + 122);
    }
}
