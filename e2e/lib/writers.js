// Writers that keep editing a room and record exactly which edits the server acknowledged,
// for the chaos and hostile tests: a `response:update` writer (the seed's full-text edits, one
// writer per room, each line a unique marker) and a writer typing through the real
// y-phoenix-channel provider, whose every `yjs` push is watched: an edit counts as acknowledged
// once a push carrying all of its structs got an ok reply (its own update, or the sync step 2
// the provider answers the server's sync step 1 with).
import * as decoding from "lib0/decoding";
import { Y, PhoenixChannelProvider, MESSAGE_SYNC } from "./yjs.js";
import { join, sleep, waitFor } from "./phx.js";

/** Counts replies by outcome: ok, error reasons, timeouts. */
class Outcomes {
  constructor() {
    this.ok = 0;
    this.errors = {};
    this.timeouts = 0;
    this.times = []; // [Date.now(), "ok" | reason | "timeout"]
  }
  record(what) {
    this.times.push([Date.now(), what]);
    if (what === "ok") this.ok++;
    else if (what === "timeout") this.timeouts++;
    else this.errors[what] = (this.errors[what] || 0) + 1;
  }
  error(response) {
    this.record(response?.reason ?? JSON.stringify(response));
  }
  errorCount() {
    return Object.values(this.errors).reduce((a, b) => a + b, 0);
  }
  toJSON() {
    return { ok: this.ok, errors: this.errors, timeouts: this.timeouts };
  }
}

/**
 * The pushes of a writer still waiting for their reply. When the channel errors (its socket
 * closed: the server died), those will never be answered: they stop counting against the
 * window at once (they time out later, and are counted as timeouts then).
 */
class InFlight {
  constructor(channel, outcomes) {
    this.size = 0;
    this.generation = 0;
    this.outcomes = outcomes;
    channel.onError(() => {
      this.generation++;
      this.size = 0;
    });
  }
  /** Count `pushed` until it is answered; `onOk` runs on an ok reply. */
  add(pushed, onOk) {
    const generation = this.generation;
    this.size++;
    const answered = () => {
      if (generation === this.generation) this.size--;
    };
    pushed
      .receive("ok", () => {
        answered();
        this.outcomes.record("ok");
        onOk();
      })
      .receive("error", (r) => {
        answered();
        this.outcomes.error(r);
      })
      .receive("timeout", () => {
        answered();
        this.outcomes.record("timeout");
      });
  }
}

/**
 * Sends `response:update` with its whole text so far, one new line per edit, filling a window
 * of `window` unanswered edits every `pauseMs` (so a few are always in flight). It is alone in its room, so every acknowledged line must be in
 * the room's text from then on.
 */
export class LegacyWriter {
  constructor(socket, roomId, { name, window = 4, padding = 0, pauseMs = 40, pushTimeout = 3000 } = {}) {
    this.channel = socket.channel(`challenges:${roomId}`, {});
    Object.assign(this, { name, window, padding, pauseMs, pushTimeout });
    this.text = "";
    this.n = 0;
    this.acked = [];
    this.outcomes = new Outcomes();
    this.flight = new InFlight(this.channel, this.outcomes);
    this.running = false;
  }
  get inflight() {
    return this.flight.size;
  }
  async join() {
    await join(this.channel);
    return this;
  }
  start() {
    this.running = true;
    this.loop = this.run();
    return this;
  }
  async run() {
    while (this.running) {
      while (this.channel.state === "joined" && this.inflight < this.window) this.edit();
      await sleep(this.pauseMs);
    }
  }
  edit() {
    const marker = `<${this.name}:${++this.n}>`;
    this.text += `${marker}${"x".repeat(this.padding)}\n`;
    const pushed = this.channel.push("response:update", { response: this.text }, this.pushTimeout);
    this.flight.add(pushed, () => this.acked.push(marker));
  }
  /** Stop editing; resolves once every edit sent is answered or timed out. */
  async stop() {
    this.running = false;
    await this.loop;
    await waitFor(() => this.inflight === 0, { timeout: this.pushTimeout + 2000, message: `${this.name}: replies` });
  }
  /** Stop editing at once (cleanup; `stop` waits for the replies). */
  close() {
    this.running = false;
  }
  /** The acknowledged lines missing from `text`. */
  missingFrom(text, acked = this.acked) {
    return acked.filter((m) => !text.includes(m));
  }
}

/** The (client, start, end) clock ranges of the structs a `yjs` sync message carries, or null. */
function rangesOf(payload) {
  try {
    const dec = decoding.createDecoder(new Uint8Array(payload));
    if (decoding.readVarUint(dec) !== MESSAGE_SYNC) return null;
    const kind = decoding.readVarUint(dec);
    if (kind !== 1 && kind !== 2) return null; // sync step 2 or update
    const { structs } = Y.decodeUpdate(decoding.readVarUint8Array(dec));
    return structs.filter((s) => !(s instanceof Y.Skip)).map((s) => [s.id.client, s.id.clock, s.id.clock + s.length]);
  } catch {
    return null;
  }
}

/**
 * Types unique words through a PhoenixChannelProvider: each word goes at the start or right
 * after another word, so no insert ever splits a word. While the channel is joined it fills a window
 * of `window` unanswered update pushes every `pauseMs`; while it is not, it types on slowly (offline edits,
 * which the provider sends when it syncs again).
 */
export class ProviderWriter {
  constructor(socket, roomId, { name, window = 4, padding = 0, pauseMs = 40, offlineEveryMs = 200, seed = 1 } = {}) {
    Object.assign(this, { name, window, padding, pauseMs, offlineEveryMs, seed });
    this.doc = new Y.Doc();
    this.text = this.doc.getText("response");
    this.provider = new PhoenixChannelProvider(socket, `challenges:${roomId}`, this.doc, { disableBc: true });
    this.edits = []; // {word, client, start, end}
    this.ackedClocks = new Map(); // client -> Uint8Array bitmap of acknowledged clocks
    this.outcomes = new Outcomes();
    this.n = 0;
    this.lastOffline = 0;
    const channel = this.provider.channel;
    this.flight = new InFlight(channel, this.outcomes);
    const push = channel.push.bind(channel);
    channel.push = (event, payload, timeout) => {
      const pushed = push(event, payload, timeout);
      if (event === "yjs") this.track(pushed, payload);
      return pushed;
    };
  }
  get channel() {
    return this.provider.channel;
  }
  get inflight() {
    return this.flight.size;
  }
  track(pushed, payload) {
    const ranges = rangesOf(payload);
    if (!ranges) return; // awareness
    this.flight.add(pushed, () => {
      for (const [client, start, end] of ranges) this.markAcked(client, start, end);
    });
  }
  markAcked(client, start, end) {
    let bits = this.ackedClocks.get(client) || new Uint8Array(1024);
    if (bits.length < end) {
      const grown = new Uint8Array(Math.max(end, bits.length * 2));
      grown.set(bits);
      bits = grown;
    }
    bits.fill(1, start, end);
    this.ackedClocks.set(client, bits);
  }
  isAcked({ client, start, end }) {
    const bits = this.ackedClocks.get(client);
    if (!bits || bits.length < end) return false;
    for (let i = start; i < end; i++) if (!bits[i]) return false;
    return true;
  }
  async synced(ms = 5000) {
    await waitFor(() => this.provider.synced, { timeout: ms, message: `${this.name} synced` });
    return this;
  }
  start() {
    this.running = true;
    this.loop = this.run();
    return this;
  }
  async run() {
    while (this.running) {
      if (this.channel?.state === "joined") {
        // each edit's push counts as in flight at once; the bound is only a guard
        for (let i = 0; i < this.window && this.inflight < this.window; i++) this.edit();
      } else if (Date.now() - this.lastOffline >= this.offlineEveryMs) {
        this.lastOffline = Date.now();
        this.edit();
      }
      await sleep(this.pauseMs);
    }
  }
  rand() {
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    return this.seed / 2147483648;
  }
  edit() {
    const word = `<${this.name}:${++this.n}${"y".repeat(this.padding)}>`;
    const current = this.text.toString();
    const ends = [0];
    for (let i = current.indexOf(">"); i !== -1; i = current.indexOf(">", i + 1)) ends.push(i + 1);
    const at = ends[Math.floor(this.rand() * ends.length)];
    const client = this.doc.clientID;
    const start = Y.getState(this.doc.store, client);
    this.text.insert(at, word);
    this.edits.push({ word, client, start, end: Y.getState(this.doc.store, client) });
  }
  async stop() {
    this.running = false;
    await this.loop;
    await waitFor(() => this.inflight === 0, { timeout: 6000, message: `${this.name}: replies` });
  }
  ackedWords() {
    return this.edits.filter((e) => this.isAcked(e)).map((e) => e.word);
  }
  unackedWords() {
    return this.edits.filter((e) => !this.isAcked(e)).map((e) => e.word);
  }
  allWords() {
    return this.edits.map((e) => e.word);
  }
  close() {
    this.running = false;
    try {
      this.provider.destroy();
    } catch {
      /* already destroyed */
    }
    try {
      this.provider.awareness.destroy();
      this.doc.destroy();
    } catch {
      /* already destroyed */
    }
  }
}

/** The words of `words` missing from `text`. */
export const missingFrom = (text, words) => words.filter((w) => !text.includes(w));

/** A one-line summary of writers' outcomes, for diagnostics. */
export function summary(writers) {
  return writers
    .map((w) => {
      const acked = w instanceof ProviderWriter ? w.ackedWords().length : w.acked.length;
      const sent = w instanceof ProviderWriter ? w.edits.length : w.n;
      return `${w.name}: ${sent} edits, ${acked} acked; replies ${JSON.stringify(w.outcomes)}`;
    })
    .join("; ");
}
