//! Pure yrs helpers: documents whose offsets are UTF-16 (as in Yjs), the
//! `response` text, the minimal edit from a full text, and the y-protocols
//! messages (sync step 1 / step 2 / update, awareness, query-awareness)
//! with the same bytes y-websocket uses. Decoding checks the embedded
//! update itself, not only the framing, and never panics.

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

/// Name of the `Y.Text` holding the answer.
pub const TEXT_NAME: &str = "response";

const MSG_SYNC: u64 = 0;
const MSG_AWARENESS: u64 = 1;
const MSG_QUERY_AWARENESS: u64 = 3;
const SYNC_STEP1: u64 = 0;
const SYNC_STEP2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    #[error("message does not decode: {0}")]
    Framing(&'static str),
    #[error("update does not decode: {0}")]
    Update(String),
    #[error("update cannot be applied: {0}")]
    Apply(String),
}

/// A decoded y-protocols message.
#[derive(Debug, Clone, PartialEq)]
pub enum YMessage {
    /// The peer's state vector (already checked to decode).
    SyncStep1(Vec<u8>),
    /// What the peer has and we lack (checked to decode).
    SyncStep2(Vec<u8>),
    Update(Vec<u8>),
    /// A raw awareness update and its decoded entries.
    Awareness(Vec<u8>, Vec<AwarenessEntry>),
    QueryAwareness,
}

/// One client's awareness state: `json` is `"null"` when it went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    pub client_id: u64,
    pub clock: u64,
    pub json: String,
}

/// A new empty document with Yjs-compatible (UTF-16) offsets.
pub fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Rebuilds a document from a snapshot and the updates after it.
pub fn load(snapshot: Option<&[u8]>, tail: &[Vec<u8>]) -> Result<Doc, DocError> {
    let doc = new_doc();
    for update in snapshot.into_iter().chain(tail.iter().map(Vec::as_slice)) {
        apply_update(&doc, update)?;
    }
    Ok(doc)
}

pub fn text(doc: &Doc) -> String {
    let text = doc.get_or_insert_text(TEXT_NAME);
    let txn = doc.transact();
    text.get_string(&txn)
}

/// Decodes and applies a v1 update. A corrupt or truncated update changes nothing.
pub fn apply_update(doc: &Doc, bytes: &[u8]) -> Result<(), DocError> {
    let update = Update::decode_v1(bytes).map_err(|e| DocError::Update(e.to_string()))?;
    let mut txn = doc.transact_mut();
    txn.apply_update(update)
        .map_err(|e| DocError::Apply(e.to_string()))
}

/// Checks that bytes are a decodable v1 update, without applying them.
pub fn check_update(bytes: &[u8]) -> Result<(), DocError> {
    Update::decode_v1(bytes)
        .map(|_| ())
        .map_err(|e| DocError::Update(e.to_string()))
}

/// The whole document as one v1 update (snapshots, sync step 2 from nothing).
pub fn encode_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// What a peer with state vector `sv` lacks.
pub fn diff(doc: &Doc, sv: &[u8]) -> Result<Vec<u8>, DocError> {
    let sv = StateVector::decode_v1(sv).map_err(|e| DocError::Update(e.to_string()))?;
    Ok(doc.transact().encode_state_as_update_v1(&sv))
}

pub fn state_vector(doc: &Doc) -> Vec<u8> {
    doc.transact().state_vector().encode_v1()
}

/// Turns the text into `new` with the smallest single edit (common prefix
/// and suffix kept, in UTF-16 units, never splitting a surrogate pair).
/// Returns the v1 update, or `None` when the text is already `new`.
pub fn replace_text(doc: &Doc, new: &str) -> Option<Vec<u8>> {
    let old = text(doc);
    replace_text_from(doc, &old, new, Cut::Exact)
}

/// Where a replacement's edges go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// At the common prefix and suffix: the smallest single edit.
    Exact,
    /// Widened to whole words (see [`widen_to_words`]): for documents
    /// nobody else edits concurrently, where it keeps tombstones from
    /// piling up. A concurrent insert inside a widened word would land
    /// next to the word instead of inside it, so rooms with Yjs members
    /// use [`Cut::Exact`].
    Words,
}

/// [`replace_text`] when the current text (`old`) is already known.
pub fn replace_text_from(doc: &Doc, old: &str, new: &str, cut: Cut) -> Option<Vec<u8>> {
    if old == new {
        return None;
    }
    let text = doc.get_or_insert_text(TEXT_NAME);
    // Common prefix and suffix in bytes, then back to whole characters (so a
    // surrogate pair is never split): equal bytes up to a character
    // boundary of `old` are whole, equal characters of `new` too.
    let mut prefix = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    while !old.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let mut suffix = old.as_bytes()[prefix..]
        .iter()
        .rev()
        .zip(new.as_bytes()[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    while !old.is_char_boundary(old.len() - suffix) {
        suffix -= 1;
    }
    if cut == Cut::Words {
        widen_to_words(old.as_bytes(), new.as_bytes(), &mut prefix, &mut suffix);
    }
    let removed = &old[prefix..old.len() - suffix];
    let inserted = &new[prefix..new.len() - suffix];
    let at = utf16_len(&old[..prefix]);
    let mut txn = doc.transact_mut();
    let removed_len = utf16_len(removed);
    // Inserted after the removed text, not before it: the new run then
    // follows the previous replacement's run (its origin is that run's last
    // character), so once deleted the two tombstones merge (see
    // `widen_to_words`) instead of piling up in front of the text after.
    if !inserted.is_empty() {
        text.insert(&mut txn, at + removed_len, inserted);
    }
    if !removed.is_empty() {
        text.remove_range(&mut txn, at, removed_len);
    }
    Some(txn.encode_update_v1())
}

/// Most bytes a replacement is widened by on each side (see [`widen_to_words`]).
const WIDEN_MAX: usize = 16;

/// A replacement (something removed and something inserted) that starts or
/// ends inside a word is widened to the whole word, up to [`WIDEN_MAX`] bytes
/// each side: `@@568:1@@` to `@@569:2@@` becomes `568:1` to `569:2`, not
/// `8:1` to `9:2`. Repeated replacements of one token then start and end at
/// the same place, so each one's insert continues the previous one's and
/// their tombstones merge into one deleted run; with ragged edges every
/// replacement leaves a separate tombstone the next one walks past, and an
/// edit's cost grows with the room's history. Pure insertions and pure
/// deletions (typing, backspace) are left exact. Only ASCII letters and
/// digits count as word bytes, so the cut stays on a character boundary.
fn widen_to_words(old: &[u8], new: &[u8], prefix: &mut usize, suffix: &mut usize) {
    let removed = old.len() - *suffix - *prefix;
    let inserted = new.len() - *suffix - *prefix;
    if removed == 0 || inserted == 0 {
        return;
    }
    let word = |b: u8| b.is_ascii_alphanumeric();
    // Inside a word at the start: the prefix ends in a word byte and the
    // change begins with one.
    if *prefix > 0 && word(old[*prefix - 1]) && (word(old[*prefix]) || word(new[*prefix])) {
        let mut p = *prefix;
        while p > 0 && *prefix - p < WIDEN_MAX && word(old[p - 1]) {
            p -= 1;
        }
        if p == 0 || !word(old[p - 1]) {
            *prefix = p;
        }
    }
    let (old_end, new_end) = (old.len() - *suffix, new.len() - *suffix);
    if *suffix > 0 && word(old[old_end]) && (word(old[old_end - 1]) || word(new[new_end - 1])) {
        let mut s = *suffix;
        while s > 0 && *suffix - s < WIDEN_MAX && word(old[old.len() - s]) {
            s -= 1;
        }
        if s == 0 || !word(old[old.len() - s]) {
            *suffix = s;
        }
    }
}

/// Length in UTF-16 code units (Yjs offsets).
fn utf16_len(s: &str) -> u32 {
    let n = if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---- y-protocols framing (lib0 encoding) ----

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn var_uint(&mut self) -> Result<u64, DocError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or(DocError::Framing("truncated number"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DocError::Framing("number too long"))
    }

    fn var_bytes(&mut self) -> Result<&'a [u8], DocError> {
        let len =
            usize::try_from(self.var_uint()?).map_err(|_| DocError::Framing("length too large"))?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(DocError::Framing("length too large"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DocError::Framing("truncated payload"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn var_string(&mut self) -> Result<String, DocError> {
        let bytes = self.var_bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DocError::Framing("string is not UTF-8"))
    }

    fn finish(&self) -> Result<(), DocError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DocError::Framing("trailing bytes"))
        }
    }
}

fn write_var_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Decodes one y-protocols message and checks what it carries.
pub fn decode_message(buf: &[u8]) -> Result<YMessage, DocError> {
    let mut r = Reader { buf, pos: 0 };
    let msg = match r.var_uint()? {
        MSG_SYNC => {
            let kind = r.var_uint()?;
            let payload = r.var_bytes()?.to_vec();
            match kind {
                SYNC_STEP1 => {
                    StateVector::decode_v1(&payload)
                        .map_err(|e| DocError::Update(e.to_string()))?;
                    YMessage::SyncStep1(payload)
                }
                SYNC_STEP2 => {
                    check_update(&payload)?;
                    YMessage::SyncStep2(payload)
                }
                SYNC_UPDATE => {
                    check_update(&payload)?;
                    YMessage::Update(payload)
                }
                _ => return Err(DocError::Framing("unknown sync message type")),
            }
        }
        MSG_AWARENESS => {
            let raw = r.var_bytes()?;
            let entries = decode_awareness(raw)?;
            YMessage::Awareness(raw.to_vec(), entries)
        }
        MSG_QUERY_AWARENESS => YMessage::QueryAwareness,
        _ => return Err(DocError::Framing("unknown message type")),
    };
    r.finish()?;
    Ok(msg)
}

fn decode_awareness(raw: &[u8]) -> Result<Vec<AwarenessEntry>, DocError> {
    let mut r = Reader { buf: raw, pos: 0 };
    let n = r.var_uint()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        let client_id = r.var_uint()?;
        let clock = r.var_uint()?;
        let json = r.var_string()?;
        if serde_json::from_str::<serde::de::IgnoredAny>(&json).is_err() {
            return Err(DocError::Framing("awareness state is not JSON"));
        }
        entries.push(AwarenessEntry {
            client_id,
            clock,
            json,
        });
    }
    r.finish()?;
    Ok(entries)
}

/// Encodes an awareness update from entries.
pub fn encode_awareness(entries: &[AwarenessEntry]) -> Vec<u8> {
    let mut inner = Vec::new();
    write_var_uint(&mut inner, entries.len() as u64);
    for e in entries {
        write_var_uint(&mut inner, e.client_id);
        write_var_uint(&mut inner, e.clock);
        write_var_bytes(&mut inner, e.json.as_bytes());
    }
    frame_awareness(&inner)
}

/// Frames a raw awareness update as a y-protocols awareness message.
pub fn frame_awareness(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 6);
    write_var_uint(&mut out, MSG_AWARENESS);
    write_var_bytes(&mut out, raw);
    out
}

fn sync_message(kind: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    write_var_uint(&mut out, MSG_SYNC);
    write_var_uint(&mut out, kind);
    write_var_bytes(&mut out, payload);
    out
}

pub fn sync_step1(sv: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP1, sv)
}

pub fn sync_step2(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP2, update)
}

pub fn sync_update(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_UPDATE, update)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_text_is_minimal_and_converges() {
        let a = new_doc();
        let b = new_doc();
        for target in [
            "hello",
            "hello world",
            "help world",
            "",
            "héllo 🎉 wörld",
            "héllo 🎊 wörld",
            "x",
        ] {
            if let Some(u) = replace_text(&a, target) {
                apply_update(&b, &u).unwrap();
            }
            assert_eq!(text(&a), target);
            assert_eq!(text(&b), target);
        }
        assert!(replace_text(&a, "x").is_none());
    }

    #[test]
    fn random_edits_between_multibyte_texts_converge() {
        // Characters that share leading bytes (😀/😃) or trailing bytes
        // (é/ʩ) make the byte-wise prefix and suffix stop inside one.
        let alphabet = ['a', 'é', 'ʩ', '😀', '😃', '\n', 'ü', 'b', '7', ' '];
        for mode in [Cut::Exact, Cut::Words] {
            random_edits_converge(&alphabet, mode);
        }
    }

    fn random_edits_converge(alphabet: &[char], mode: Cut) {
        let (a, b) = (new_doc(), new_doc());
        let mut seed = 0x2545_f491_u32;
        let mut current: Vec<char> = Vec::new();
        for _ in 0..600 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let at = (seed >> 8) as usize % (current.len() + 1);
            let cut = ((seed >> 4) as usize % 3).min(current.len() - at);
            let add = (seed >> 12) as usize % 3;
            let new: Vec<char> = (0..add)
                .map(|i| alphabet[((seed >> (16 + i)) as usize) % alphabet.len()])
                .collect();
            current.splice(at..at + cut, new);
            let target: String = current.iter().collect();
            if let Some(u) = replace_text_from(&a, &text(&a), &target, mode) {
                apply_update(&b, &u).unwrap();
            }
            assert_eq!(text(&a), target, "{mode:?}");
            assert_eq!(text(&b), target, "{mode:?}");
        }
    }

    /// The load generator's edits: a marker whose numbers change width and
    /// trailing digits, then fixed filler.
    fn marker_text(sender: u32, seq: u32, micros: u64) -> String {
        let mut s = format!("@@{sender}:{seq}:{micros}@@");
        while s.len() < 256 {
            s.push((b'a' + (s.len() % 26) as u8) as char);
        }
        s
    }

    #[test]
    fn repeated_replacements_of_one_token_leave_one_tombstone_run() {
        let (a, b) = (new_doc(), new_doc());
        let mut micros = 987_654_u64;
        for i in 0..2_000_u32 {
            micros += 50_000 + u64::from(i * 7_919 % 997);
            let target = marker_text(500 + i % 4, 1 + i / 4, micros);
            if let Some(u) = replace_text_from(&a, &text(&a), &target, Cut::Words) {
                apply_update(&b, &u).unwrap();
            }
            assert_eq!(text(&b), target);
        }
        // Every tombstone is a struct of the encoded state: a merged run
        // keeps it small, one run per edit would be over 2 000 structs.
        let state = encode_state(&a);
        assert!(state.len() < 3_000, "state is {} bytes", state.len());
    }

    #[test]
    fn replacements_inside_words_are_widened_to_the_word_only() {
        let a = new_doc();
        let words = |d: &Doc, t: &str| replace_text_from(d, &text(d), t, Cut::Words);
        words(&a, "let total = 41;");
        let u = words(&a, "let total = 42;").unwrap();
        // The update carries the whole number, not the last digit alone.
        assert!(u.windows(2).any(|w| w == b"42"));
        // Exact, it carries the digit alone.
        let e = new_doc();
        replace_text(&e, "let total = 41;");
        let u = replace_text(&e, "let total = 42;").unwrap();
        assert!(!u.windows(2).any(|w| w == b"42"));
        // Typing (a pure insertion) stays exact: no tombstones.
        let c = new_doc();
        words(&c, "abc");
        let before = encode_state(&c).len();
        words(&c, "abcd");
        words(&c, "abcde");
        assert_eq!(text(&c), "abcde");
        assert!(encode_state(&c).len() <= before + 4);
    }

    #[test]
    fn emoji_edits_do_not_split_surrogates() {
        let a = new_doc();
        replace_text(&a, "a😀b");
        replace_text(&a, "a😃b");
        assert_eq!(text(&a), "a😃b");
    }

    #[test]
    fn sync_round_trip_between_docs() {
        let a = new_doc();
        replace_text(&a, "from a");
        let b = new_doc();
        let step1 = sync_step1(&state_vector(&b));
        let YMessage::SyncStep1(sv) = decode_message(&step1).unwrap() else {
            panic!()
        };
        let step2 = sync_step2(&diff(&a, &sv).unwrap());
        let YMessage::SyncStep2(update) = decode_message(&step2).unwrap() else {
            panic!()
        };
        apply_update(&b, &update).unwrap();
        assert_eq!(text(&b), "from a");
    }

    #[test]
    fn corrupt_and_truncated_updates_are_refused_and_change_nothing() {
        let a = new_doc();
        let update = replace_text(&a, "some text that is long enough").unwrap();
        let msg = sync_update(&update);
        assert!(decode_message(&msg).is_ok());
        // Cut bytes: framing length no longer matches.
        assert!(decode_message(&msg[..msg.len() - 3]).is_err());
        // Re-framed truncated update: the framing is right, the update is not.
        let truncated = sync_update(&update[..update.len() - 5]);
        assert!(decode_message(&truncated).is_err());
        let b = new_doc();
        assert!(apply_update(&b, &update[..update.len() - 5]).is_err());
        assert_eq!(text(&b), "");
        for garbage in [
            &[][..],
            &[0],
            &[0, 2],
            &[7, 1, 2],
            &[0, 9, 1, 0],
            &[1, 5, 1],
        ] {
            assert!(decode_message(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..5_000 {
            let len = rng.gen_range(0..48);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if !bytes.is_empty() {
                bytes[0] %= 4;
            }
            let _ = decode_message(&bytes);
        }
    }

    #[test]
    fn awareness_round_trip() {
        let entries = vec![AwarenessEntry {
            client_id: 42,
            clock: 3,
            json: r#"{"user":{"name":"A"}}"#.into(),
        }];
        let msg = encode_awareness(&entries);
        let YMessage::Awareness(_, decoded) = decode_message(&msg).unwrap() else {
            panic!()
        };
        assert_eq!(decoded, entries);
    }

    #[test]
    fn snapshot_plus_tail_equals_the_doc() {
        let a = new_doc();
        let mut log = Vec::new();
        for t in ["a", "ab", "abc", "xbc"] {
            log.push(replace_text(&a, t).unwrap());
        }
        let snap = {
            let d = load(None, &log[..2]).unwrap();
            encode_state(&d)
        };
        let d = load(Some(&snap), &log[2..]).unwrap();
        assert_eq!(text(&d), "xbc");
    }
}
