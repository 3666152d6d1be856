// Hand-made Yjs (lib0 v1) and y-protocols bytes for the hostile tests, as
// ../shared/research/redteam/rt.py builds them: updates no honest Yjs client would send.

/** A lib0 variable-length unsigned number (exact up to 2^53). */
export function vu(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** A lib0 string: its UTF-8 length, then its bytes. */
export function vs(s) {
  const b = new TextEncoder().encode(s);
  return cat(vu(b.length), b);
}

export function cat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));

/** y-protocols: a sync update message carrying `update`. */
export const syncUpdate = (update) => cat(vu(0), vu(2), vu(update.length), update);

/** y-protocols: a sync step 1 carrying the encoded state vector `sv`. */
export const syncStep1 = (sv) => cat(vu(0), vu(0), vu(sv.length), sv);

/** An update: one string item at the start of the root text `root`. */
export function insertRootText(client, clock, text, root = "response") {
  const item = cat(Uint8Array.of(4), vu(1), vs(root), vs(text));
  return cat(vu(1), vu(1), vu(client), vu(clock), item, vu(0));
}

/** An update: one string item right after (originClient, originClock). */
export function insertAfter(client, clock, originClient, originClock, text) {
  const item = cat(Uint8Array.of(0x84), vu(originClient), vu(originClock), vs(text));
  return cat(vu(1), vu(1), vu(client), vu(clock), item, vu(0));
}

/** An update deleting `length` structs of `client` from `clock`. */
export const deleteRange = (client, clock, length) => cat(vu(0), vu(1), vu(client), vu(1), vu(clock), vu(length));

/** An update nesting `depth` Y.Maps, each the value of key "a" of the one before (D2). */
export function nestedMaps(client, depth, root) {
  const items = [cat(Uint8Array.of(0x27), vu(1), vs(root), vs("a"), vu(1))];
  for (let k = 1; k < depth; k++) items.push(cat(Uint8Array.of(0x27), vu(0), vu(client), vu(k - 1), vs("a"), vu(1)));
  return cat(vu(1), vu(depth), vu(client), vu(0), ...items, vu(0));
}

/** y-protocols: an awareness message of [clientId, clock, json] entries. */
export function awarenessMessage(entries) {
  const body = cat(vu(entries.length), ...entries.flatMap(([client, clock, json]) => [vu(client), vu(clock), vs(json)]));
  return cat(vu(1), vu(body.length), body);
}

/** An ArrayBuffer of exactly these bytes (what phoenix.js sends as a binary push). */
export const buf = (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
