// Hostile Yjs input sent by a real phoenix client (hardening.md D1, D2, D3, D8 and risk 5; the
// bytes of ../shared/research/redteam/*.py): each attack gets a clear error reply, the server
// lives, and the honest members, who keep editing meanwhile, lose nothing. Every server here
// runs under a watchdog that SIGKILLs it above 1 GB, so a server that still has the memory
// bombs cannot take the machine down.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { startServer, signIn, createChallenge } from "../lib/server.js";
import { SocketPool, join, push, sleep, waitFor, collect, disconnect } from "../lib/phx.js";
import { api } from "../lib/http.js";
import { openProvider, closeProvider, ManualYjsClient } from "../lib/yjs.js";
import { LegacyWriter, ProviderWriter, missingFrom, summary } from "../lib/writers.js";
import { watchMemory, rssKb } from "../lib/watchdog.js";
import * as y from "../lib/ycraft.js";

/** The watchdog kills a server above this. */
const WATCHDOG_MB = 1024;
/** "A few hundred MB": a server that reserved for a declared count went far past it. */
const RSS_BOUND_MB = 256;
const T = { timeout: 30000 };
const INVALID = { status: "error", response: { reason: "invalid update" } };
/** An update naming structs the room does not have. */
const OUT_OF_SYNC = { status: "error", response: { reason: "out of sync" } };
const refused = (reason) => ({ status: "error", response: { reason } });

/** The four updates of redteam/yjs_room_panic.py (found by yfuzz.py) that made yrs panic (D3). */
const PANIC_UPDATES = [
  "01010bffffffff1208010161067d01770173787c402000007c5d8000007e010b010205",
  "02011600c40b060b07025a5a150b00010108726573706f6e736501840b000165810b0105840b06016f840b0703726c64410b0001c60b070b0804626f6c64046e756c6cc10b000b0101c50b0d0b010d7b22696d617f65223a2278227dc60b0e0b0104626f6c6404747275652101016d016b012301016d0362696e030102030101016103880b14037c402000007c5d8000007e2701016d066e6573746564012700ba0b180171000701017803017007000b1a0604000b1b02787428000b1a05636c617373017701632901016d03646f63037375627600010b06000102050b010d0110011203",
  "01040b808080c31a0701017803017007000b1a0604000b1b02787428000b1a05636c61737301770163010b010205",
  "01020b80808080808080182701016d066e65737465640127000b18017100010b010205",
];

/**
 * A server under a memory watchdog, honest members and an attacker. Everything it opens is
 * closed when the test ends.
 */
class Arena {
  static async open(t) {
    const a = new Arena();
    a.pool = new SocketPool();
    a.closers = [];
    t.after(() => a.close());
    await a.start({});
    a.ann = await signIn(a.srv, "Ann");
    a.bob = await signIn(a.srv, "Bob");
    a.mallory = await signIn(a.srv, "Mallory");
    return a;
  }
  async start(opts) {
    this.srv = await startServer(opts);
    this.dataDir ??= this.srv.dataDir;
    this.dog = watchMemory(this.srv.proc.pid, WATCHDOG_MB);
  }
  /** SIGKILL, then a new server on the same data dir and port. */
  async restart() {
    await this.srv.kill();
    this.dog.stop();
    await this.start({ dataDir: this.dataDir, port: this.srv.port });
  }
  async close() {
    for (const c of this.closers) c();
    await this.pool.closeAll();
    this.dog?.stop();
    await this.srv?.kill();
    if (this.dataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
  alive() {
    return this.srv.proc.exitCode === null && this.srv.proc.signalCode === null;
  }
  /** What became of the server, for assertion messages. */
  fate() {
    const { exitCode, signalCode } = this.srv.proc;
    const peak = `peak RSS ${this.dog.peakMb()} MB`;
    if (this.dog.killedAtMb) return `killed by the watchdog at ${this.dog.killedAtMb} MB`;
    if (exitCode === null && signalCode === null) return `alive, ${peak}`;
    const said = this.srv.output().split("\n").filter((l) => /panicked|overflow|abort/i.test(l)).slice(-2).join(" | ");
    return `dead (exit code ${exitCode}, signal ${signalCode}): ${said}`;
  }
  async room(owner = this.ann, title = "room") {
    return (await createChallenge(this.srv, owner.token, { title })).id;
  }
  /**
   * Honest members at work: providers of Ann and Bob typing in `roomId` (a new room if not
   * given) and Ann's `response:update` writer in a room of its own.
   */
  async honest(roomId) {
    roomId ??= await this.room(this.ann, "honest");
    const legacyRoom = await this.room(this.ann, "honest legacy");
    const opts = { reconnectAfterMs: () => 100, timeout: 3000 };
    const pace = { window: 2, pauseMs: 100 };
    const pa = new ProviderWriter(await this.pool.connect(this.srv, this.ann.token, opts), roomId, { name: "Pa", seed: 3, ...pace });
    const pb = new ProviderWriter(await this.pool.connect(this.srv, this.bob.token, opts), roomId, { name: "Pb", seed: 5, ...pace });
    this.closers.push(() => pa.close(), () => pb.close());
    await Promise.all([pa.synced(), pb.synced()]);
    const socket = await this.pool.connect(this.srv, this.ann.token, opts);
    const la = await new LegacyWriter(socket, legacyRoom, { name: "La", ...pace }).join();
    this.closers.push(() => la.close());
    const h = { roomId, legacyRoom, pa, pb, la, all: [pa, pb, la] };
    h.all.forEach((w) => w.start());
    await waitFor(() => h.all.every((w) => w.outcomes.ok >= 2), { timeout: 5000, message: "the honest members are at work" });
    return h;
  }
  /**
   * Stops the honest members and checks that every edit they made was acknowledged, without an
   * error or a timeout, and is in the answers of their rooms.
   */
  async checkHonest(h) {
    await Promise.all(h.all.map((w) => w.stop()));
    const diag = `${summary(h.all)}; server ${this.fate()}`;
    for (const w of h.all) {
      assert.deepEqual(w.outcomes.errors, {}, `${w.name}'s error replies (${diag})`);
      assert.equal(w.outcomes.timeouts, 0, `${w.name}'s edits without a reply (${diag})`);
    }
    const text = await this.text(h.roomId);
    assert.deepEqual(missingFrom(text, [...h.pa.allWords(), ...h.pb.allWords()]), [], `honest Yjs edits missing (${diag})`);
    assert.deepEqual(h.la.missingFrom(await this.text(h.legacyRoom)), [], `honest response:update edits missing (${diag})`);
    return text;
  }
  async text(id) {
    const r = await api(this.srv, "GET", `/api/challenges/${id}`, { token: this.ann.token, timeout: 20000 });
    assert.equal(r.status, 200, `GET /api/challenges/${id}: ${r.status}; server ${this.fate()}`);
    return r.body.challenge.response;
  }
  /** Mallory's channel joined to `roomId` (a room of her own if not given). */
  async attacker(roomId) {
    roomId ??= await this.room(this.mallory, "mine");
    const socket = await this.pool.connect(this.srv, this.mallory.token, { timeout: 10000 });
    const channel = socket.channel(`challenges:${roomId}`, {});
    await join(channel);
    return { socket, channel, roomId };
  }
}

/** Pushes a binary `yjs` message; resolves to {status, response} (status "timeout" if none). */
const pushYjs = (channel, bytes, ms = 10000) => push(channel, "yjs", y.buf(bytes), ms);

/** Pushes each message with up to `window` unanswered; resolves to counts of "status: reason". */
async function pushAll(channel, messages, window = 4) {
  const counts = {};
  let next = 0;
  const worker = async () => {
    while (next < messages.length) {
      const r = await pushYjs(channel, messages[next++], 20000);
      const k = r.status === "error" ? `error: ${r.response?.reason}` : r.status;
      counts[k] = (counts[k] || 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return counts;
}

test("D1: a state vector and an update declaring 2^31 clients are refused as invalid update; RSS stays bounded", T, async (t) => {
  const a = await Arena.open(t);
  const h = await a.honest();
  const { channel } = await a.attacker();
  const before = a.dog.peakMb();
  // sync step 1 whose state vector declares 2^31 + 2^17 clients (10 bytes)
  const sv = await push(channel, "yjs_sync", y.buf(y.hex("00000780808880080b01")), 10000);
  // an update declaring as many clients (redteam/yjs_membomb.py update)
  const bomb = y.cat(y.vu(2 ** 31 + 2 ** 17), y.hex("01010b00040872657370ffff6f04000b1b02787428000b1a058080636c61737301770163010b010205"));
  const up = await pushYjs(channel, y.syncUpdate(bomb));
  await sleep(200);
  const fate = `RSS before ${before} MB; server ${a.fate()}`;
  t.diagnostic(fate);
  assert.deepEqual(sv, INVALID, `yjs_sync with 2^31 clients (${fate})`);
  assert.deepEqual(up, INVALID, `yjs with 2^31 clients (${fate})`);
  assert.ok(a.alive() && a.dog.peakMb() < RSS_BOUND_MB, `server ${a.fate()} (bound ${RSS_BOUND_MB} MB)`);
  await a.checkHonest(h);
});

test("D2: 8 000 nested maps and the delete that aborted restarts are refused; the server lives and restarts", { timeout: 45000 }, async (t) => {
  const a = await Arena.open(t);
  const h = await a.honest();
  const { channel, roomId } = await a.attacker();
  const replies = [];
  for (const root of ["nest", "response"]) replies.push(await pushYjs(channel, y.syncUpdate(y.nestedMaps(7, 8000, root))));
  // deleting the outermost map made yrs recurse 8 000 frames deep: the stack overflowed
  const deletion = y.syncUpdate(y.deleteRange(7, 0, 1));
  replies.push(await pushYjs(channel, deletion));
  await sleep(300);
  assert.deepEqual(replies, [INVALID, INVALID, OUT_OF_SYNC], `nest under "nest", nest under "response", delete (server ${a.fate()})`);
  assert.ok(a.alive(), `server ${a.fate()}`);
  const text = await a.checkHonest(h);
  const legacyText = await a.text(h.legacyRoom);

  // nothing of it was stored: after a crash and a restart the attacked room loads and the
  // deletion alone is refused again
  await a.restart();
  const again = await a.attacker(roomId);
  assert.deepEqual(await pushYjs(again.channel, deletion), OUT_OF_SYNC, `the deletion after a restart (server ${a.fate()})`);
  await sleep(300);
  assert.ok(a.alive(), `server ${a.fate()}`);
  assert.equal(await a.text(h.roomId), text, "the honest Yjs room after the restart");
  assert.equal(await a.text(h.legacyRoom), legacyText, "the honest legacy room after the restart");
});

test("D3: the four updates that made yrs panic: never 'room unavailable'; the other members' edits are acknowledged", T, async (t) => {
  const a = await Arena.open(t);
  const roomId = await a.room(a.ann, "shared");
  const h = await a.honest(roomId);
  const { channel } = await a.attacker(roomId);
  const replies = [];
  for (const u of PANIC_UPDATES) replies.push(await pushYjs(channel, y.syncUpdate(y.hex(u)), 5000));
  const okAt = h.all.map((w) => w.outcomes.ok);
  await waitFor(() => h.all.every((w, i) => w.outcomes.ok >= okAt[i] + 5), {
    timeout: 5000,
    message: `the honest members' edits acknowledged after the attack (${summary(h.all)})`,
  }).catch(() => {});
  t.diagnostic(`replies to the four updates: ${JSON.stringify(replies)}`);
  for (const [i, r] of replies.entries()) {
    const ok = r.status === "ok" || (r.status === "error" && r.response.reason === "invalid update");
    assert.ok(ok, `update ${i}: ${JSON.stringify(r)} (server ${a.fate()}; honest members: ${summary(h.all)})`);
  }
  assert.deepEqual(replies[3], INVALID, "the update that made yrs panic");
  const text = await a.checkHonest(h);
  // a member speaking only response:update edits the attacked room too
  const socket = await a.pool.connect(a.srv, a.bob.token);
  const legacy = socket.channel(`challenges:${roomId}`, {});
  await join(legacy);
  assert.deepEqual(await push(legacy, "response:update", { response: `${text}<plain>` }), { status: "ok", response: {} });
  assert.equal(await a.text(roomId), `${text}<plain>`);
  assert.ok(a.alive(), `server ${a.fate()}`);
});

test("D8: updates whose dependencies never arrive are refused and not kept (a fresh client sees none, RSS stays)", T, async (t) => {
  const a = await Arena.open(t);
  const h = await a.honest();
  const { socket, channel, roomId } = await a.attacker();
  const [count, size, client] = [60, 400_000, 1_000_000];
  await sleep(300);
  const before = rssKb(a.srv.proc.pid);
  // each after an item of a client the server never saw (redteam/yjs_attacks.py pending)
  const messages = Array.from({ length: count }, (_, i) => y.syncUpdate(y.insertAfter(client + i, 0, 999_999_999, 5, "p".repeat(size))));
  const counts = await pushAll(channel, messages);
  await sleep(500);
  const grownMb = ((rssKb(a.srv.proc.pid) ?? before) - before) / 1024;
  // a fresh Yjs client: its sync step 2 carries no pending struct, and the text is empty
  const fresh = new ManualYjsClient(socket, roomId);
  await fresh.join();
  await waitFor(() => fresh.received >= 2, { timeout: 5000, message: "the server's sync step 2 and step 1" });
  const pending = fresh.doc.store.pendingStructs;
  const sent = Math.round((count * size) / 1e6);
  t.diagnostic(`replies ${JSON.stringify(counts)}; RSS +${grownMb.toFixed(1)} MB; a fresh client's pending structs: ${pending ? [...pending.missing.keys()].length + " client(s)" : "none"}`);
  assert.deepEqual(counts, { "error: out of sync": count }, `replies to ${count} updates of ${size} bytes with missing dependencies`);
  assert.equal(pending, null, `a fresh client received pending structs of clients ${pending ? [...pending.missing.keys()] : ""}`);
  assert.equal(fresh.text.toString(), "");
  assert.ok(grownMb < sent / 3, `server RSS grew by ${grownMb.toFixed(1)} MB after ${sent} MB of refused updates`);
  const text = await a.checkHonest(h);
  // nor stored: after a crash and a restart, a fresh client of the room gets nothing pending
  await a.restart();
  const late = new ManualYjsClient(await a.pool.connect(a.srv, a.bob.token), roomId);
  await late.join();
  await waitFor(() => late.received >= 2, { timeout: 5000, message: "the server's sync step 2 and step 1 after the restart" });
  assert.equal(late.doc.store.pendingStructs, null, "pending structs after a restart");
  assert.equal(await a.text(h.roomId), text, "the honest room after the restart");
});

test("D8: 60 updates of 900 KB are refused as too large, the document stops at its cap; a member's text stays", { timeout: 45000 }, async (t) => {
  const a = await Arena.open(t);
  const h = await a.honest();
  const roomId = await a.room(a.mallory, "big");
  const victim = await openProvider(await a.pool.connect(a.srv, a.ann.token), roomId);
  a.closers.push(() => closeProvider(victim));
  victim.text.insert(0, "<keep me>");
  await waitFor(async () => (await a.text(roomId)) === "<keep me>", { timeout: 3000, message: "the victim's text saved" });
  const { channel } = await a.attacker(roomId);
  const client = 2_000_000;
  const huge = "a".repeat(900_000);
  const counts = await pushAll(
    channel,
    Array.from({ length: 60 }, (_, i) => y.syncUpdate(y.insertRootText(client + i, 0, huge))),
  );
  assert.deepEqual(counts, { "error: update too large": 60 }, `replies to 60 updates of 900 KB (server ${a.fate()})`);
  // under the update cap, typed one after the other: the document stops at its cap
  const part = "b".repeat(480_000);
  const chain = [];
  for (let k = 0, clock = 0; k < 4; k++, clock += part.length) {
    const u = k === 0 ? y.insertRootText(client, 0, part) : y.insertAfter(client, clock, client, clock - 1, part);
    const r = await pushYjs(channel, y.syncUpdate(u));
    chain.push(r.status === "ok" ? "ok" : `${r.status}: ${r.response?.reason}`);
    if (r.status !== "ok") break;
  }
  assert.equal(chain.at(-1), "error: document too large", `replies to 480 KB updates: ${chain}`);
  const text = await a.text(roomId);
  assert.ok(text.length < 1 << 20, `the answer is ${text.length} characters`);
  assert.ok(text.includes("<keep me>"), "the victim's text is still there");
  // a joiner's sync of the whole document fits in a frame
  const late = await openProvider(await a.pool.connect(a.srv, a.bob.token), roomId);
  a.closers.push(() => closeProvider(late));
  assert.equal(late.text.toString(), text);
  await a.checkHonest(h);
});

test("D8: awareness states of 900 KB are refused; a joiner's sync stays small", T, async (t) => {
  const a = await Arena.open(t);
  const roomId = await a.room(a.mallory, "aware");
  const h = await a.honest(roomId);
  const { channel } = await a.attacker(roomId);
  const big = JSON.stringify({ user: { name: "x".repeat(900_000) } });
  const counts = await pushAll(
    channel,
    Array.from({ length: 10 }, (_, i) => y.awarenessMessage([[3_000_000 + i, 1, big]])),
  );
  const socket = await a.pool.connect(a.srv, a.bob.token);
  const joiner = socket.channel(`challenges:${roomId}`, {});
  const got = collect(joiner, "yjs");
  await join(joiner);
  joiner.push("yjs_sync", y.buf(y.syncStep1(y.vu(0))));
  await sleep(700);
  const bytes = got.reduce((n, b) => n + b.byteLength, 0);
  assert.deepEqual(counts, { "error: awareness state too large": 10 }, `replies to 10 awareness states of 900 KB (server ${a.fate()})`);
  assert.ok(bytes < 64 << 10, `a joiner's sync received ${bytes} bytes`);
  assert.ok(!h.pb.provider.awareness.getStates().has(3_000_000), "a member received a refused state");
  await a.checkHonest(h);
});

test("risk 5: awareness under another member's client id is ignored; the victim's cursor stays, also after the attacker leaves", T, async (t) => {
  const a = await Arena.open(t);
  const roomId = await a.room(a.ann, "cursors");
  const h = await a.honest(roomId);
  const [victim, observer] = [h.pa, h.pb];
  const vid = victim.doc.clientID;
  victim.provider.awareness.setLocalState({ user: { name: "Victim", color: "#30bced" }, cursor: { anchor: 1, head: 2 } });
  const seen = () => observer.provider.awareness.getStates().get(vid);
  await waitFor(() => seen()?.user?.name === "Victim", { timeout: 3000, message: "the observer sees the victim's cursor" });
  const { socket, channel } = await a.attacker(roomId);
  const clock = victim.provider.awareness.meta.get(vid).clock;
  const spoof = JSON.stringify({ user: { name: "Mallory", color: "#000000" }, cursor: { anchor: 0, head: 0 } });
  const replies = [
    await pushYjs(channel, y.awarenessMessage([[vid, clock + 100, spoof]])),
    await pushYjs(channel, y.awarenessMessage([[vid, clock + 200, "null"]])),
  ];
  await sleep(400);
  t.diagnostic(`replies to the spoofed states: ${JSON.stringify(replies)}`);
  assert.deepEqual(seen(), { user: { name: "Victim", color: "#30bced" }, cursor: { anchor: 1, head: 2 } }, "the observer's view of the victim after the spoof");
  // the attacker leaves: the victim's state is not the attacker's to take away
  await disconnect(socket);
  await sleep(600);
  assert.equal(seen()?.user?.name, "Victim", "the victim's cursor after the attacker left");
  // and the victim goes on moving it
  victim.provider.awareness.setLocalStateField("cursor", { anchor: 3, head: 4 });
  await waitFor(() => seen()?.cursor?.head === 4, { timeout: 3000, message: "the observer sees the victim's cursor move" });
  await a.checkHonest(h);
});

test("risk 5: an awareness colour with CSS in it is refused and never relayed", T, async (t) => {
  const a = await Arena.open(t);
  const roomId = await a.room(a.ann, "colours");
  const h = await a.honest(roomId);
  const { channel } = await a.attacker(roomId);
  const id = 4_000_000;
  const css = "red; background:url(//evil.example/x)";
  const replies = [
    await pushYjs(channel, y.awarenessMessage([[id, 1, JSON.stringify({ user: { name: "M", color: css } })]])),
    await pushYjs(channel, y.awarenessMessage([[id, 2, JSON.stringify({ user: { name: "M", color: "#ff0000", colorLight: css } })]])),
  ];
  assert.deepEqual(replies, [refused("invalid awareness colour"), refused("invalid awareness colour")], `server ${a.fate()}`);
  await sleep(300);
  assert.ok(!h.pb.provider.awareness.getStates().has(id), "a member received the state with CSS in its colour");
  // a colour that is one goes through
  assert.deepEqual(await pushYjs(channel, y.awarenessMessage([[id, 3, JSON.stringify({ user: { name: "M", color: "#ff0000" } })]])), {
    status: "ok",
    response: {},
  });
  await waitFor(() => h.pb.provider.awareness.getStates().get(id)?.user?.color === "#ff0000", { timeout: 3000, message: "a hex colour relayed" });
  await a.checkHonest(h);
});
