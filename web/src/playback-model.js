// The playback of a session (CONTRACT §7), from its export file: the
// answer's Yjs updates replayed in this page, exactly as the server
// applied them, to any instant; who wrote each character; the events on
// the authors' tracks; and the session's time with its idle stretches
// skipped. No DOM here (playback.js draws it).
//
// Nothing is replayed before the view opens (at the start of the session):
// the first time an update is applied, the clocks it gave its client are
// noted (a character's author is its Yjs item's). Seeking starts from the
// nearest state kept before the instant (every SNAPSHOT_EVERY updates, kept
// as seeks pass them), and once the view is up a background pass goes
// through the whole log in the page's idle time, so every seek is quick.
import * as Y from "yjs";

/** A stretch longer than this with nothing happening is skipped… */
export const IDLE_MS = 5000;
/** …and shown as a tick this long. */
export const IDLE_SHOWN_MS = 400;
/** Updates between two kept states: a seek applies at most this many (a few ms). */
const SNAPSHOT_EVERY = 500;
/** Updates the background pass applies at a time (a few ms: never in the way of playing). */
const IDLE_SLICE = 500;
/** The longest the background pass waits for idle time between two slices. */
const IDLE_WAIT_MS = 50;

/** The server's presence palette (server/src/challenges/model.rs `color_for`): the same colour as in the room. */
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42a5a5", "#f032e6", "#9a6324", "#800000", "#008080", "#000075", "#c71585"];
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = 0xffffffffffffffffn;

/** A user's colour: FNV-1a (64 bits) of the id's UTF-8 bytes, as the server picks it. */
export function colorFor(userId) {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(userId)) hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & U64;
  return PALETTE[Number(hash % BigInt(PALETTE.length))];
}

function base64Bytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The index of the last element of sorted `arr` that is <= `x` (-1 if none). */
function lastAtOrBefore(arr, x) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export class Session {
  /** Reads an export file (`GET /api/challenges/:id/export`). */
  constructor(file) {
    this.file = file;
    this.authors = []; // {id, name, color, edits, chars}
    const byId = new Map();
    const author = (id, name) => {
      const key = id == null ? "" : String(id);
      let a = byId.get(key);
      if (!a) {
        a = { index: this.authors.length, id: key, name: "", color: key ? colorFor(key) : "#6b7280", edits: 0 };
        byId.set(key, a);
        this.authors.push(a);
      }
      if (!a.name && name) a.name = String(name);
      return a;
    };
    const rows = Array.isArray(file.updates) ? file.updates.filter((u) => (u.doc ?? 0) === 0) : [];
    const n = rows.length;
    this.n = n;
    this.times = new Float64Array(n);
    this.authorOf = new Int32Array(n);
    this.bytes = new Array(n);
    for (let i = 0; i < n; i++) {
      const u = rows[i];
      const a = author(u.user_id, u.first_name);
      a.edits++;
      this.times[i] = Date.parse(u.at);
      this.authorOf[i] = a.index;
      this.bytes[i] = String(u.update_v1); // decoded when applied
    }
    // The room's events (not the edits, which are the updates): raw rows, their data as JSON.
    this.events = (Array.isArray(file.events) ? file.events : [])
      .map((e) => {
        let data = {};
        try {
          data = typeof e.data === "string" ? JSON.parse(e.data) : e.data || {};
        } catch {
          data = {};
        }
        return { ...data, at: Date.parse(e.at), kind: String(e.kind), author: e.user_id == null ? -1 : author(e.user_id, e.first_name).index };
      })
      .filter((e) => Number.isFinite(e.at))
      .sort((a, b) => a.at - b.at);
    // The session ends with the interview: people who open the room
    // afterwards (to review it) join and leave on the timeline too.
    const end = this.events.find((e) => e.kind === "end");
    const endedAt = end ? end.at : Date.parse(file.challenge && file.challenge.ended_at);
    if (Number.isFinite(endedAt)) this.events = this.events.filter((e) => e.at <= endedAt);
    const used = new Set();
    for (const a of this.authors) {
      if (!a.name) a.name = a.id ? "Someone" : "Duet";
      // Two authors the palette gave one colour: the later one takes a free one.
      if (used.has(a.color)) a.color = PALETTE.find((c) => !used.has(c)) || a.color;
      used.add(a.color);
    }
    this.buildClock();
    // Replay state.
    this.doc = new Y.Doc();
    this.applied = 0;
    this.snapshots = new Map([[0, null]]); // updates applied -> the state then
    this.snapshotIndex = [0]; // its keys, sorted
    this.ranges = new Map(); // client -> {starts, ends, updates}
    this.known = 0; // the updates whose clocks are noted (see apply)
  }

  /** The session's time, idle stretches (longer than IDLE_MS) shown as IDLE_SHOWN_MS. */
  buildClock() {
    const all = [...this.times, ...this.events.map((e) => e.at)].filter(Number.isFinite).sort((a, b) => a - b);
    const real = [];
    for (const t of all) if (!real.length || t > real[real.length - 1]) real.push(t);
    if (!real.length) real.push(Date.now());
    const comp = new Float64Array(real.length);
    this.skips = [];
    for (let i = 1; i < real.length; i++) {
      const gap = real[i] - real[i - 1];
      const shown = gap > IDLE_MS ? IDLE_SHOWN_MS : gap;
      if (gap > IDLE_MS) this.skips.push({ at: comp[i - 1], shown, from: real[i - 1], to: real[i] });
      comp[i] = comp[i - 1] + shown;
    }
    this.real = Float64Array.from(real);
    this.comp = comp;
    this.start = real[0];
    this.end = real[real.length - 1];
    this.total = comp[comp.length - 1];
  }

  /** Playback time (ms from the start, idle skipped) of a real instant (ms since the epoch). */
  toComp(t) {
    const i = lastAtOrBefore(this.real, t);
    if (i < 0) return 0;
    if (i >= this.real.length - 1) return this.total;
    const f = (t - this.real[i]) / (this.real[i + 1] - this.real[i]);
    return this.comp[i] + f * (this.comp[i + 1] - this.comp[i]);
  }

  /** The real instant (ms since the epoch) of playback time `c`. */
  toReal(c) {
    const i = lastAtOrBefore(this.comp, c);
    if (i < 0) return this.start;
    if (i >= this.comp.length - 1) return this.end;
    const f = (c - this.comp[i]) / (this.comp[i + 1] - this.comp[i]);
    return this.real[i] + f * (this.real[i + 1] - this.real[i]);
  }

  /** How many updates were made at or before the real instant `t`. */
  countAt(t) {
    return lastAtOrBefore(this.times, t) + 1;
  }

  /** Update `i`'s bytes (decoded from base64 when first needed). */
  update(i) {
    let b = this.bytes[i];
    if (typeof b === "string") this.bytes[i] = b = base64Bytes(b);
    return b;
  }

  /**
   * Applies update `i` to `doc`. The first time any document applies it,
   * the clocks it gave its client are noted: that is who wrote those
   * characters. (Every document applies the updates in order, so the
   * ranges of a client stay sorted.)
   */
  apply(doc, i) {
    if (i !== this.known) return Y.applyUpdate(doc, this.update(i));
    const note = (tr) => {
      tr.afterState.forEach((clock, client) => {
        const before = tr.beforeState.get(client) || 0;
        if (clock <= before) return;
        let r = this.ranges.get(client);
        if (!r) this.ranges.set(client, (r = { starts: [], ends: [], updates: [] }));
        r.starts.push(before);
        r.ends.push(clock);
        r.updates.push(i);
      });
    };
    doc.on("afterTransaction", note);
    try {
      Y.applyUpdate(doc, this.update(i));
    } finally {
      doc.off("afterTransaction", note);
    }
    this.known++;
  }

  /** Keeps `doc`'s state after `index` updates, if it is a snapshot's place. */
  keep(index, doc) {
    if (index % SNAPSHOT_EVERY || this.snapshots.has(index)) return;
    this.snapshots.set(index, Y.encodeStateAsUpdate(doc));
    this.snapshotIndex.splice(lastAtOrBefore(this.snapshotIndex, index) + 1, 0, index);
  }

  /** The document with the first `k` updates applied. */
  seek(k) {
    k = Math.max(0, Math.min(this.n, k));
    if (k === this.applied) return;
    const at = this.snapshotIndex[lastAtOrBefore(this.snapshotIndex, k)];
    if (k < this.applied || at > this.applied) {
      this.doc.destroy();
      this.doc = new Y.Doc();
      const state = this.snapshots.get(at);
      if (state) Y.applyUpdate(this.doc, state);
      this.applied = at;
    }
    while (this.applied < k) {
      this.apply(this.doc, this.applied++);
      this.keep(this.applied, this.doc);
    }
  }

  /**
   * The whole log once, a slice at a time in the page's idle time: every
   * author noted and the states kept, so that any seek is quick. Stops when
   * `stopped()` says so.
   */
  async fillSnapshots(stopped = () => false) {
    const doc = new Y.Doc();
    // Idle time, but at least every IDLE_WAIT_MS: a busy page still gets its seeks quick soon.
    const idle = () => new Promise((resolve) => (window.requestIdleCallback ? requestIdleCallback(() => resolve(), { timeout: IDLE_WAIT_MS }) : setTimeout(resolve, 0)));
    try {
      for (let i = 0; i < this.n && !stopped(); ) {
        await idle();
        for (const end = Math.min(this.n, i + IDLE_SLICE); i < end && !stopped(); ) {
          this.apply(doc, i++);
          this.keep(i, doc);
        }
      }
    } finally {
      doc.destroy();
    }
  }

  text() {
    return this.doc.getText("response").toString();
  }

  /** Which update made the character of `client` at `clock`: {update, end} (end: the first clock after its range). */
  origin(client, clock) {
    const r = this.ranges.get(client);
    if (!r) return null;
    const i = lastAtOrBefore(r.starts, clock);
    if (i < 0 || clock >= r.ends[i]) return null;
    return { update: r.updates[i], end: r.ends[i] };
  }

  /**
   * The text now, as runs of one author: [{author, text, fresh}], `fresh`
   * for the characters of the last update applied.
   */
  runs() {
    const out = [];
    const last = this.applied - 1;
    const push = (author, text, fresh) => {
      const prev = out[out.length - 1];
      if (prev && prev.author === author && prev.fresh === fresh) prev.text += text;
      else out.push({ author, text, fresh });
    };
    for (let item = this.doc.getText("response")._start; item; item = item.right) {
      if (item.deleted || !item.countable || typeof item.content.str !== "string") continue;
      let str = item.content.str;
      let clock = item.id.clock;
      while (str.length) {
        const o = this.origin(item.id.client, clock);
        const take = o ? Math.min(str.length, o.end - clock) : str.length;
        push(o ? this.authorOf[o.update] : -1, str.slice(0, take), !!o && o.update === last);
        str = str.slice(take);
        clock += take;
      }
    }
    return out;
  }
}
