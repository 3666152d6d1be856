//! Checks every Yjs message before yrs sees it. yrs trusts what a message
//! declares: it reserves memory for declared counts (a 10-byte state vector
//! declaring 2^31 clients made the server touch gigabytes), integrates
//! nested types recursively (8 000 nested maps overflowed the stack and
//! aborted the process), and panics on some sequences of updates with gaps.
//! So a message is parsed here first, by the rules of yrs's v1 decoder, and
//! refused unless:
//! - every declared count fits in the bytes that follow it, and every
//!   number fits in 32 bits (yrs would wrap a larger one, Yjs would not);
//! - its items are text (or deleted text) of the document's root texts:
//!   no other root, no nested type, map entry, embed, format, binary, JSON
//!   or subdocument (the answer needs none of them);
//! - with a document to check against, it depends only on what the
//!   document has: each client's structs start at or before the clock the
//!   document has for it, skips cover only what it has, and origins and
//!   deletions point inside what it will have. So nothing is ever left
//!   pending (yrs would keep such structs, and their memory, for good) and
//!   no "integrated skip" reaches yrs's block store.
//!
//! The format (lib0 v1, as yrs `Update::decode` reads it):
//! `update = clients:var {structs:var client:var clock:var struct*} delete_set`;
//! `struct = info:u8 ..` where info 0 is a GC range (`len:var`), 10 a skip
//! (`len:var`), anything else an item: `origin:ID` if info & 0x80,
//! `right_origin:ID` if info & 0x40, and, when it has neither, `parent`
//! (`1 name:string` or `0 ID`) and `parent_sub:string` if info & 0x20; then
//! its content by `info & 0x1f` (1 deleted `len:var`, 4 string `string`).
//! `delete_set = clients:var {client:var ranges:var {clock:var len:var}*}`.

use std::collections::HashMap;

use yrs::{ReadTxn, StateVector};

/// Why a message was refused. Clients are told `"invalid update"`; the
/// reason goes to the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("truncated")]
    Truncated,
    #[error("a number does not fit in 32 bits")]
    TooBig,
    #[error("declares more entries than it holds")]
    Count,
    #[error("a string is not UTF-8")]
    Utf8,
    #[error("trailing bytes")]
    Trailing,
    #[error("an empty GC or skip range")]
    Empty,
    #[error("only text is accepted (no maps, arrays, embeds, formats or subdocuments)")]
    NotText,
    #[error("nested types are not accepted")]
    Nested,
    #[error("a root other than the document's texts")]
    OtherRoot,
    #[error("depends on structs the document does not have")]
    MissingDependencies,
    #[error("unknown message type")]
    UnknownMessage,
    #[error("an awareness state is not JSON")]
    NotJson,
}

/// Names of the root texts an update may write: the answer, the shared
/// input of a run, and the interviewers' notes (whose document may also
/// use `response`, as a client of the answer's would). All text: another
/// root in a document is dead weight, never a danger.
pub const ROOTS: &[&str] = &[super::TEXT_NAME, super::STDIN_NAME, super::NOTES_NAME];

const INFO_GC: u8 = 0;
const INFO_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0x80;
const HAS_RIGHT_ORIGIN: u8 = 0x40;
const HAS_PARENT_SUB: u8 = 0x20;
const CONTENT_DELETED: u8 = 1;
const CONTENT_STRING: u8 = 4;

/// What a checked update holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Structs (items, GC and skip ranges).
    pub structs: u32,
    /// UTF-16 units of text the update's items carry (some may be known).
    pub inserted: u64,
    /// Clock units its delete set names (some may be deleted already).
    pub deleted: u64,
    /// Delete set ranges.
    pub deleted_ranges: u32,
}

impl Shape {
    /// No structs and no deletions (Yjs's empty update, `[0, 0]`).
    pub fn is_empty(&self) -> bool {
        self.structs == 0 && self.deleted_ranges == 0
    }
}

/// lib0 v1 reading, never past the end.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, Refused> {
        let b = *self.buf.get(self.pos).ok_or(Refused::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A lib0 variable-length unsigned number, as yrs reads a `u64`.
    pub(super) fn var_u64(&mut self) -> Result<u64, Refused> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            }
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Refused::TooBig)
    }

    /// A number that must fit in 32 bits (clocks, lengths, counts, clients).
    pub(super) fn var_u32(&mut self) -> Result<u32, Refused> {
        u32::try_from(self.var_u64()?).map_err(|_| Refused::TooBig)
    }

    /// A count of entries that each take at least `min_bytes`.
    pub(super) fn count(&mut self, min_bytes: usize) -> Result<u32, Refused> {
        let n = self.var_u32()?;
        if (n as usize).saturating_mul(min_bytes) > self.left() {
            return Err(Refused::Count);
        }
        Ok(n)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Refused> {
        let len = self.var_u64()?;
        let len = usize::try_from(len).map_err(|_| Refused::TooBig)?;
        if len > self.left() {
            return Err(Refused::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(super) fn string(&mut self) -> Result<&'a str, Refused> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Refused::Utf8)
    }

    pub(super) fn finish(&self) -> Result<(), Refused> {
        if self.left() == 0 {
            Ok(())
        } else {
            Err(Refused::Trailing)
        }
    }
}

/// The clock of each client: what a document has, grown by an update's
/// contiguous structs as they are read.
#[derive(Default)]
struct Clocks(HashMap<u32, u32>);

impl Clocks {
    fn of(sv: &StateVector) -> Self {
        Clocks(
            sv.iter()
                .filter_map(|(client, clock)| Some((u32::try_from(client.get()).ok()?, *clock)))
                .collect(),
        )
    }

    fn get(&self, client: u32) -> u32 {
        self.0.get(&client).copied().unwrap_or(0)
    }
}

/// An ID (client, clock) an item points to, checked once every struct of
/// the update is read.
type Ref = (u32, u32);

/// Checks a v1 update. With `known` (the document's state vector), also
/// that it depends on nothing the document lacks.
pub fn update(bytes: &[u8], known: Option<&StateVector>) -> Result<Shape, Refused> {
    let mut r = Reader::new(bytes);
    let mut shape = Shape::default();
    let mut clocks = known.map(Clocks::of);
    let mut refs: Vec<Ref> = Vec::new();
    // Each client block takes at least 3 bytes (structs, client, clock).
    let clients = r.count(3)?;
    for _ in 0..clients {
        // Each struct takes at least 2 bytes (info, length or content).
        let structs = r.count(2)?;
        let client = r.var_u32()?;
        let start = r.var_u32()?;
        let mut clock = start;
        let have = clocks.as_ref().map(|c| c.get(client));
        if have.is_some_and(|have| start > have) {
            return Err(Refused::MissingDependencies);
        }
        for _ in 0..structs {
            let (len, skip) = read_struct(&mut r, &mut refs, &mut shape)?;
            let end = clock.checked_add(len).ok_or(Refused::TooBig)?;
            // A skip stands for structs the sender does not have: the
            // document must have them already.
            if skip && have.is_some_and(|have| end > have) {
                return Err(Refused::MissingDependencies);
            }
            clock = end;
            shape.structs += 1;
        }
        if let Some(clocks) = clocks.as_mut() {
            let entry = clocks.0.entry(client).or_insert(0);
            *entry = (*entry).max(clock);
        }
    }
    read_delete_set(&mut r, &mut refs, &mut shape)?;
    r.finish()?;
    if let Some(clocks) = &clocks {
        if refs
            .iter()
            .any(|&(client, clock)| clock >= clocks.get(client))
        {
            return Err(Refused::MissingDependencies);
        }
    }
    Ok(shape)
}

/// Reads one struct; returns its length in clock units and whether it is
/// a skip. Item origins go to `refs`.
fn read_struct(
    r: &mut Reader,
    refs: &mut Vec<Ref>,
    shape: &mut Shape,
) -> Result<(u32, bool), Refused> {
    let info = r.u8()?;
    match info {
        INFO_GC | INFO_SKIP => {
            let len = r.var_u32()?;
            if len == 0 {
                return Err(Refused::Empty);
            }
            Ok((len, info == INFO_SKIP))
        }
        _ => {
            let mut read_id = |r: &mut Reader| -> Result<(), Refused> {
                let client = r.var_u32()?;
                let clock = r.var_u32()?;
                refs.push((client, clock));
                Ok(())
            };
            if info & HAS_ORIGIN != 0 {
                read_id(r)?;
            }
            if info & HAS_RIGHT_ORIGIN != 0 {
                read_id(r)?;
            }
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                match r.var_u32()? {
                    1 => {
                        if !ROOTS.contains(&r.string()?) {
                            return Err(Refused::OtherRoot);
                        }
                    }
                    0 => return Err(Refused::Nested),
                    _ => return Err(Refused::NotText),
                }
            }
            // Text items have no key (that is how map entries are written);
            // bit 0x10 is no content kind Yjs knows.
            if info & HAS_PARENT_SUB != 0 || info & 0x10 != 0 {
                return Err(Refused::NotText);
            }
            let len = match info & 0x0f {
                CONTENT_DELETED => r.var_u32()?,
                CONTENT_STRING => {
                    let s = r.string()?;
                    let units = if s.is_ascii() {
                        s.len()
                    } else {
                        s.encode_utf16().count()
                    };
                    shape.inserted += units as u64;
                    u32::try_from(units).map_err(|_| Refused::TooBig)?
                }
                _ => return Err(Refused::NotText),
            };
            // An empty item is dropped by yrs without taking a clock.
            Ok((len, false))
        }
    }
}

fn read_delete_set(r: &mut Reader, refs: &mut Vec<Ref>, shape: &mut Shape) -> Result<(), Refused> {
    // Each client takes at least 2 bytes, each range 2.
    let clients = r.count(2)?;
    for _ in 0..clients {
        let client = r.var_u32()?;
        let ranges = r.count(2)?;
        for _ in 0..ranges {
            let clock = r.var_u32()?;
            let len = r.var_u32()?;
            if len == 0 {
                continue;
            }
            let last = clock.checked_add(len - 1).ok_or(Refused::TooBig)?;
            refs.push((client, last));
            shape.deleted += u64::from(len);
            shape.deleted_ranges += 1;
        }
    }
    Ok(())
}

/// Checks a v1 state vector (a sync step 1).
pub fn state_vector(bytes: &[u8]) -> Result<(), Refused> {
    let mut r = Reader::new(bytes);
    let n = r.count(2)?;
    for _ in 0..n {
        r.var_u32()?;
        r.var_u32()?;
    }
    r.finish()
}

/// Checks an awareness update: entries of (client, clock, JSON state).
pub fn awareness(bytes: &[u8]) -> Result<(), Refused> {
    let mut r = Reader::new(bytes);
    let n = r.count(3)?;
    for _ in 0..n {
        r.var_u32()?;
        r.var_u32()?;
        let json = r.string()?;
        if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
            return Err(Refused::NotJson);
        }
    }
    r.finish()
}

/// The state vector of `doc`, for [`update`].
pub fn known(doc: &yrs::Doc) -> StateVector {
    yrs::Transact::transact(doc).state_vector()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenges::doc::{new_doc, replace_text, TEXT_NAME};
    use yrs::updates::encoder::Encode;
    use yrs::{Array, Map, Text, Transact, WriteTxn};

    fn vu(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn vs(s: &str) -> Vec<u8> {
        let mut out = vu(s.len() as u64);
        out.extend_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn real_text_updates_pass_and_tell_their_shape() {
        let doc = new_doc();
        let u = replace_text(&doc, "hello 😀").unwrap();
        let shape = update(&u, Some(&StateVector::default())).unwrap();
        assert_eq!(shape.inserted, 8);
        assert_eq!(shape.structs, 1);
        let before = known(&doc);
        let u = replace_text(&doc, "help 😀").unwrap();
        let shape = update(&u, Some(&before)).unwrap();
        assert!(shape.deleted >= 1, "{shape:?}");
        assert!(update(&[0, 0], None).unwrap().is_empty());
    }

    #[test]
    fn declared_counts_beyond_the_bytes_are_refused() {
        // The state vector and update of the memory bomb: 2^31 clients.
        assert_eq!(
            state_vector(&[0x80, 0x80, 0x80, 0x80, 0x08, 0x0b, 0x01]),
            Err(Refused::Count)
        );
        assert_eq!(
            update(&[0x80, 0x80, 0x80, 0x80, 0x08, 1, 2], None),
            Err(Refused::Count)
        );
        // A delete set declaring 2^31 ranges.
        let mut u = vec![0, 1, 7];
        u.extend(vu(1 << 31));
        assert_eq!(update(&u, None), Err(Refused::Count));
        // Clocks beyond 32 bits.
        let mut u = vec![1, 1, 7];
        u.extend(vu(1 << 40));
        assert_eq!(update(&u, None), Err(Refused::TooBig));
        assert_eq!(awareness(&[0xff, 0xff, 0x03]), Err(Refused::Count));
    }

    fn nested_maps(depth: u64, root: &str) -> Vec<u8> {
        // The attack of the report: each map the value of key "a" of the one before.
        let mut items = vec![0x27];
        items.extend(vu(1));
        items.extend(vs(root));
        items.extend(vs("a"));
        items.extend(vu(1));
        for k in 1..depth {
            items.push(0x27);
            items.extend(vu(0));
            items.extend(vu(7));
            items.extend(vu(k - 1));
            items.extend(vs("a"));
            items.extend(vu(1));
        }
        let mut u = vu(1);
        u.extend(vu(depth));
        u.extend(vu(7));
        u.extend(vu(0));
        u.extend(items);
        u.extend(vu(0));
        u
    }

    #[test]
    fn other_roots_nested_types_and_non_text_content_are_refused() {
        assert_eq!(
            update(&nested_maps(8000, "nest"), None),
            Err(Refused::OtherRoot)
        );
        assert_eq!(
            update(&nested_maps(8000, TEXT_NAME), None),
            Err(Refused::NotText)
        );
        let other = {
            let doc = new_doc();
            let t = doc.get_or_insert_text("other");
            let mut txn = doc.transact_mut();
            t.insert(&mut txn, 0, "x");
            txn.encode_update_v1()
        };
        assert_eq!(update(&other, None), Err(Refused::OtherRoot));
        let map = {
            let doc = new_doc();
            let m = doc.get_or_insert_map(TEXT_NAME);
            let mut txn = doc.transact_mut();
            m.insert(&mut txn, "k", "v");
            txn.encode_update_v1()
        };
        assert_eq!(update(&map, None), Err(Refused::NotText));
        let array = {
            let doc = new_doc();
            let a = doc.get_or_insert_array(TEXT_NAME);
            let mut txn = doc.transact_mut();
            a.push_back(&mut txn, 1);
            txn.encode_update_v1()
        };
        assert_eq!(update(&array, None), Err(Refused::NotText));
        let embedded = {
            let doc = new_doc();
            let t = doc.get_or_insert_text(TEXT_NAME);
            let mut txn = doc.transact_mut();
            t.insert_embed(&mut txn, 0, yrs::MapPrelim::default());
            txn.encode_update_v1()
        };
        assert!(update(&embedded, None).is_err());
        let formatted = {
            let doc = new_doc();
            let t = doc.get_or_insert_text(TEXT_NAME);
            let mut txn = doc.transact_mut();
            let attrs = yrs::types::Attrs::from([("bold".into(), true.into())]);
            t.insert_with_attributes(&mut txn, 0, "b", attrs);
            txn.encode_update_v1()
        };
        assert_eq!(update(&formatted, None), Err(Refused::NotText));
        let subdoc = {
            let doc = new_doc();
            let mut txn = doc.transact_mut();
            let a = txn.get_or_insert_array("docs");
            a.push_back(&mut txn, yrs::Doc::new());
            txn.encode_update_v1()
        };
        assert!(update(&subdoc, None).is_err());
    }

    #[test]
    fn gaps_are_refused_against_a_document() {
        let doc = new_doc();
        let first = replace_text(&doc, "abc").unwrap();
        let second = replace_text(&doc, "abcdef").unwrap();
        let third = replace_text(&doc, "xbcdef").unwrap();
        let empty = StateVector::default();
        // Alone, each is well formed.
        for u in [&first, &second, &third] {
            assert!(update(u, None).is_ok());
        }
        assert!(update(&first, Some(&empty)).is_ok());
        assert_eq!(
            update(&second, Some(&empty)),
            Err(Refused::MissingDependencies)
        );
        assert_eq!(
            update(&third, Some(&empty)),
            Err(Refused::MissingDependencies)
        );
        let target = new_doc();
        crate::challenges::doc::apply_update(&target, &first).unwrap();
        assert!(update(&second, Some(&known(&target))).is_ok());
        // The deletion of "a" names a clock the target has: fine.
        crate::challenges::doc::apply_update(&target, &second).unwrap();
        assert!(update(&third, Some(&known(&target))).is_ok());
    }

    #[test]
    fn a_skip_over_what_the_document_lacks_is_refused() {
        // client 9: a skip of 5 then a one-character item at clock 5.
        let mut u = vu(1);
        u.extend(vu(2));
        u.extend(vu(9));
        u.extend(vu(0));
        u.push(INFO_SKIP);
        u.extend(vu(5));
        u.push(CONTENT_STRING);
        u.extend(vu(1));
        u.extend(vs(TEXT_NAME));
        u.extend(vs("x"));
        u.extend(vu(0));
        assert!(update(&u, None).is_ok());
        assert_eq!(
            update(&u, Some(&StateVector::default())),
            Err(Refused::MissingDependencies)
        );
    }

    #[test]
    fn trailing_bytes_and_junk_are_refused() {
        let doc = new_doc();
        let mut u = replace_text(&doc, "abc").unwrap();
        u.push(0);
        assert_eq!(update(&u, None), Err(Refused::Trailing));
        assert!(update(&[], None).is_err());
        let sv = {
            let d = new_doc();
            replace_text(&d, "x");
            known(&d).encode_v1()
        };
        assert!(state_vector(&sv).is_ok());
        assert!(awareness(&[1, 5, 1, 2, b'{', b'}']).is_ok());
        assert_eq!(awareness(&[1, 5, 1, 2, b'{', b'x']), Err(Refused::NotJson));
    }
}
