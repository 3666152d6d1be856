// Many nodes (CONTRACT §5), the rest of issue 18's black-box tests: real y-phoenix-channel
// providers, a legacy `response:update` client and phoenix.js Presence on different nodes of one
// room converge (text, awareness, typing); 50 acknowledged edits survive a SIGKILL of the node
// that acknowledged them; a bus that drops and repeats 30% of room and presence frames
// (DUET_TEST_BUS_FAULTS) changes nothing a client sees once the numbered updates and presence
// deltas have been caught up. Skipped like cluster.test.js (see there) unless
// DUET_TEST_CLUSTER=require.
//
// Every test types only whole lines ("[who:n]\n") at line starts of its own text, so no Yjs
// insert ever lands inside another: each line is in the text exactly once. (A legacy client's
// full-text rewrite is one replacement between the common prefix and suffix; a line typed
// concurrently with it may be taken away or cut in two, which is what a full-text edit means, so
// the first test types only after the text every rewrite starts with.)
//
// Two clusters on one Redis would hear each other (one bus channel): the fault-injected cluster
// runs in its own `describe`, after the first cluster has stopped.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { clusterSupport, startCluster } from "../lib/cluster.js";
import { signIn, createChallenge } from "../lib/server.js";
import { api } from "../lib/http.js";
import { join, push, collect, waitFor, sleep, poolFor, rawTcpOf } from "../lib/phx.js";
import { trackPresence } from "../lib/presence.js";
import { Y, PhoenixChannelProvider, waitSynced, closeProvider, ManualYjsClient } from "../lib/yjs.js";

const support = await clusterSupport();
const T = { timeout: 45000, skip: support.skip };
/** "Within a few seconds": what a room may take to converge after the last edit. */
const CONVERGE_MS = 5000;
/** CONTRACT §3: typing falls back to false 3 s after the last edit. */
const TYPING_FALLBACK_MS = 3000;
/** How long a late read is given, only to report how late it was. */
const READ_MS = 2000;
/** The faults of the third test: drop and repeat this fraction of received room/presence frames. */
const FAULTS = "drop=0.3,dup=0.3";
/** A socket that must not reconnect within the test (to drop it for good). */
const NO_RECONNECT = { reconnectAfterMs: () => 60000 };

let cluster;
let ana, ben, cy, dee;

/** A small seeded generator (mulberry32): the same choices on every run. */
function seeded(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A y-phoenix-channel provider for `user` on `node` with a phoenix.js Presence on the provider's
 * own channel; resolved once synced, destroyed when the test ends.
 */
async function providerOn(t, p, node, user, id, socketOpts = {}) {
  const socket = await p.connect(node, user.token, socketOpts);
  const doc = new Y.Doc();
  const provider = new PhoenixChannelProvider(socket, `challenges:${id}`, doc, { disableBc: true });
  const m = { node, user, socket, doc, provider, text: doc.getText("response"), pres: trackPresence(provider.channel) };
  t.after(() => closeProvider(m));
  await waitSynced(provider, 5000);
  return m;
}

/** A client without Yjs: `response:update` out, `response:updated` in, and its Presence. */
async function legacyOn(p, node, user, id, socketOpts = {}) {
  const socket = await p.connect(node, user.token, socketOpts);
  const channel = socket.channel(`challenges:${id}`, {});
  const pres = trackPresence(channel);
  const updates = collect(channel, "response:updated");
  const reply = await join(channel);
  return { node, user, socket, channel, pres, updates, text: () => updates.at(-1)?.challenge?.response ?? reply.challenge.response };
}

/**
 * Insert `line` at a line start of `text` (0 or just after a "\n") chosen by `rand`, not before
 * `from` (a line start).
 */
function insertAtLineStart(text, line, rand, from = 0) {
  const s = text.toString();
  const starts = [from];
  for (let i = from; i < s.length; i++) if (s[i] === "\n") starts.push(i + 1);
  text.insert(starts[Math.floor(rand() * starts.length)], line);
}

/**
 * `m` types `count` lines `[tag:i]\n` at random line starts (not before `from`), up to `gapMs`
 * apart; resolves to them.
 */
async function typeLines(m, tag, count, rand, { gapMs = 20, from = 0 } = {}) {
  const lines = [];
  for (let i = 0; i < count; i++) {
    const line = `[${tag}:${i}]\n`;
    insertAtLineStart(m.text, line, rand, from);
    lines.push(line);
    await sleep(Math.floor(rand() * gapMs));
  }
  return lines;
}

const occurrences = (text, s) => text.split(s).length - 1;
const lineCount = (text) => (text ?? "").split("\n").length - 1;

/** A node's read of the challenge's answer (`GET /api/challenges/:id`). */
async function readText(node, id, token = ana.token) {
  const r = await api(node, "GET", `/api/challenges/${id}`, { token });
  assert.equal(r.status, 200, `GET on ${node.name}: ${r.status} ${r.text}`);
  return r.body.challenge.response;
}

/** Assert every one of `tokens` is in `text` exactly once. */
function assertEach(text, tokens, what) {
  const wrong = tokens.filter((s) => occurrences(text, s) !== 1).map((s) => `${JSON.stringify(s)} x${occurrences(text, s)}`);
  assert.deepEqual(wrong, [], `${what}: not exactly once in the text (${text.length} chars)`);
}

/**
 * Wait until every provider's text and every legacy client's last `response:updated` are one text;
 * then `GET /api/challenges/:id` on each of `nodes` must return it. Resolves to the text.
 */
async function converged({ yjs = [], legacy = [], nodes, id, token, timeout = CONVERGE_MS, what = "the room" }) {
  const texts = () => [...yjs.map((m) => m.text.toString()), ...legacy.map((l) => l.text())];
  await waitFor(() => texts().every((s) => s === texts()[0]), { timeout, message: `${what} converges` }).catch((e) => {
    const shown = texts().map((s, i) => `  ${i}: ${s.length} chars ${JSON.stringify(s.slice(-120))}`);
    throw new Error(`${e.message}\n${shown.join("\n")}`);
  });
  const text = texts()[0];
  // Every client has it, so every node's room holds it, committed: each node's read must say so
  // at once (a read sees every acknowledged edit). A late read is reported with its delay.
  const late = [];
  for (const node of nodes) {
    const first = await readText(node, id, token);
    if (first === text) continue;
    const since = Date.now();
    let last = first;
    await waitFor(async () => (last = await readText(node, id, token)) === text, { timeout: READ_MS, interval: 20 }).catch(() => {});
    late.push(`${node.name} said ${first.length} chars (clients ${text.length}); ${last === text ? `right ${Date.now() - since} ms later` : `still wrong after ${READ_MS} ms`}`);
  }
  assert.deepEqual(late, [], `GET /api/challenges/:id on every node once ${what} converged`);
  return text;
}

/** The `duet_bus_*` counters of `/metrics`, summed over `nodes`. */
async function busCounters(nodes) {
  const sum = {};
  for (const node of nodes) {
    const r = await api(node, "GET", "/metrics");
    assert.equal(r.status, 200, `/metrics on ${node.name}`);
    for (const [, name, value] of r.text.matchAll(/^(duet_bus_\w+) (\d+)$/gm)) sum[name] = (sum[name] ?? 0) + Number(value);
  }
  return sum;
}

/** What a Presence shows, comparable across clients: sorted [key, ["phx_ref typing", ...]]. */
const view = (pres) =>
  JSON.stringify(
    pres
      .list()
      .map(({ key, metas }) => [key, metas.map((m) => `${m.phx_ref} ${m.typing}`).sort()])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
  );
const keysOf = (pres) => pres.list().map((p) => p.key).sort();
const typingOf = (pres, user) => pres.byKey(user.user.id)?.metas.some((m) => m.typing) ?? false;

/** Wait until each of `members` sees exactly the users `users` in the room. */
async function seeAll(members, users, timeout = 3000) {
  const want = JSON.stringify(users.map((u) => u.user.id).sort());
  for (const m of members) {
    await waitFor(() => JSON.stringify(keysOf(m.pres)) === want, {
      timeout,
      message: `${m.user.user.first_name} on ${m.node.name} sees ${users.map((u) => u.user.first_name).join(", ")}`,
    }).catch((e) => {
      throw new Error(`${e.message}; sees ${view(m.pres)}`);
    });
  }
}

describe("a cluster of three nodes, more", () => {
  before(async () => {
    if (support.skip) return;
    cluster = await startCluster({ nodes: 3 });
    await cluster.waitForNodes(3);
    const n1 = cluster.node(0);
    [ana, ben, cy, dee] = await Promise.all(["Ana", "Ben", "Cy", "Dee"].map((n) => signIn(n1, n)));
  });

  after(() => cluster?.stop());

  test("Yjs providers on three nodes and a legacy client converge; awareness and typing cross nodes", T, async (t) => {
    const p = poolFor(t);
    const [n1, n2, n3] = cluster.nodes;
    const ch = await createChallenge(n1, ana.token);
    const A = await providerOn(t, p, n1, ana, ch.id, NO_RECONNECT);
    const B = await providerOn(t, p, n2, ben, ch.id);
    const C = await providerOn(t, p, n3, cy, ch.id);
    const L = await legacyOn(p, n3, dee, ch.id);
    await seeAll([A, B, C, L], [ana, ben, cy, dee]);
    const room = { yjs: [A, B, C], legacy: [L], nodes: cluster.nodes, id: ch.id, token: ana.token };

    // Awareness: Ana's cursor (node1) and Ben's (node2) reach the providers on the other nodes.
    A.provider.awareness.setLocalStateField("user", { name: "Ana", color: "#30bced" });
    A.provider.awareness.setLocalStateField("cursor", { anchor: 0, head: 0 });
    B.provider.awareness.setLocalStateField("user", { name: "Ben", color: "#ee6352" });
    const seenBy = (m, who, f) => f(m.provider.awareness.getStates().get(who.doc.clientID));
    await waitFor(() => [B, C].every((m) => seenBy(m, A, (s) => s?.user?.name === "Ana" && s?.cursor?.head === 0)), {
      timeout: 3000,
      message: "Ana's awareness state (node1) on node2 and node3",
    });
    await waitFor(() => [A, C].every((m) => seenBy(m, B, (s) => s?.user?.name === "Ben")), {
      timeout: 3000,
      message: "Ben's awareness state (node2) on node1 and node3",
    });

    // 1. Three providers on three nodes type at once; the legacy client only watches.
    const benTyping = waitFor(() => typingOf(A.pres, ben), { timeout: 3000, message: "node1 sees Ben (node2) typing" });
    const anaTyping = waitFor(() => typingOf(L.pres, ana), { timeout: 3000, message: "node3's legacy client sees Ana (node1) typing" });
    const first = (
      await Promise.all([typeLines(A, "ana", 30, seeded(1)), typeLines(B, "ben", 30, seeded(2)), typeLines(C, "cy", 30, seeded(3))])
    ).flat();
    await Promise.all([benTyping, anaTyping]);
    let text = await converged({ ...room, what: "a burst of Yjs edits on three nodes" });
    assertEach(text, first, "the first burst");

    // Ben says he stopped typing: node1 and node3 see it at once (not after the 3 s fallback).
    const stop = await push(B.provider.channel, "current_participant_typing:remove", {});
    assert.equal(stop.status, "ok", JSON.stringify(stop));
    await waitFor(() => !typingOf(A.pres, ben) && !typingOf(L.pres, ben), {
      timeout: 1500,
      message: "Ben's typing: false on node1 and node3",
    });

    // 2. The legacy client rewrites the whole text eight times while the providers keep typing
    // after the first burst's text. A rewrite may take away (or cut) lines it had not seen yet;
    // the text before them and each of its markers stay.
    const before = text;
    const markers = [];
    const legacyEdits = (async () => {
      const rand = seeded(4);
      for (let k = 0; k < 8; k++) {
        const marker = `<<LEGACY ${String.fromCharCode(65 + k)}>>`;
        const r = await push(L.channel, "response:update", { response: `${L.text()}${marker}\n` });
        assert.equal(r.status, "ok", `legacy edit ${k}: ${JSON.stringify(r)}`);
        markers.push(marker);
        await waitFor(() => L.text().includes(marker), { timeout: 3000, message: `the legacy client's own ${marker}` });
        await sleep(Math.floor(rand() * 60));
      }
    })();
    const tail = { gapMs: 40, from: before.length };
    const second = (
      await Promise.all([
        typeLines(A, "ana2", 20, seeded(5), tail),
        typeLines(B, "ben2", 20, seeded(6), tail),
        typeLines(C, "cy2", 20, seeded(7), tail),
        legacyEdits,
      ])
    )
      .slice(0, 3)
      .flat();
    const last = markers.at(-1);
    await waitFor(() => [A, B, C].every((m) => m.text.toString().includes(last)), {
      timeout: CONVERGE_MS,
      message: "every provider has the legacy client's last edit",
    });
    // 3. Providers only again.
    const third = (
      await Promise.all([
        typeLines(A, "ana3", 10, seeded(8), { from: before.length }),
        typeLines(B, "ben3", 10, seeded(9), { from: before.length }),
        typeLines(C, "cy3", 10, seeded(10), { from: before.length }),
      ])
    ).flat();
    text = await converged({ ...room, what: "Yjs edits mixed with legacy rewrites" });
    assert.ok(text.startsWith(before), "the first burst's text is still the text's beginning");
    assertEach(text, markers, "the legacy markers");
    assertEach(text, third, "the last burst");
    const kept = second.filter((s) => occurrences(text, s) === 1).length;
    assert.ok(second.every((s) => occurrences(text, s) <= 1), "a line of the mixed burst twice");
    t.diagnostic(
      `${first.length + second.length + third.length} Yjs lines, ${markers.length} legacy rewrites; ${kept}/${second.length} lines typed during the rewrites kept whole; ${text.length} chars`,
    );

    // Ana's connection drops without a goodbye: her awareness state leaves node2 and node3, and
    // her presence leaves everyone.
    rawTcpOf(A.socket).destroy();
    await waitFor(() => [B, C].every((m) => !m.provider.awareness.getStates().has(A.doc.clientID)), {
      timeout: 3000,
      message: "Ana's awareness state removed on node2 and node3 after her socket dropped",
    });
    await seeAll([B, C, L], [ben, cy, dee]);
    // Ben leaves the room the normal way: the same on node3.
    B.provider.destroy();
    await waitFor(() => !C.provider.awareness.getStates().has(B.doc.clientID), {
      timeout: 3000,
      message: "Ben's awareness state removed on node3 after he left",
    });
    await seeAll([C, L], [cy, dee]);
  });

  test("50 acknowledged edits survive a SIGKILL of the node that acknowledged them", T, async (t) => {
    const p = poolFor(t);
    const [n1, n2, n3] = cluster.nodes;
    const EDITS = 50;
    // Two rooms on node1: one edited with Yjs updates (node2 holds it too: a provider watches it
    // there), one with response:update (no other node holds it).
    const yRoom = await createChallenge(n1, ana.token);
    const jRoom = await createChallenge(n1, ana.token);
    const M = new ManualYjsClient(await p.connect(n1, ana.token, NO_RECONNECT), yRoom.id);
    await M.join();
    await waitFor(() => M.received >= 2, { timeout: 3000, message: "the server's sync steps" });
    const J = await legacyOn(p, n1, ana, jRoom.id, NO_RECONNECT);
    const W = await providerOn(t, p, n2, ben, yRoom.id);

    // Every edit pushed at once (pipelined); node1 dies as soon as the last ack arrives.
    let acked = 0;
    let killed;
    const onReply = (what) => (r) => {
      assert.equal(r.status, "ok", `${what}: ${JSON.stringify(r)}`);
      if (++acked === 2 * EDITS) killed = cluster.stopNode(0, { signal: "SIGKILL" });
    };
    let legacyText = "";
    const replies = [];
    for (let i = 0; i < EDITS; i++) {
      replies.push(M.edit((text) => text.insert(text.length, `[y:${i}]\n`), 10000).then(onReply(`yjs edit ${i}`)));
      legacyText += `[j:${i}]\n`;
      replies.push(push(J.channel, "response:update", { response: legacyText }, 10000).then(onReply(`legacy edit ${i}`)));
    }
    const started = Date.now();
    await Promise.all(replies);
    await killed;
    t.diagnostic(`${2 * EDITS} edits acknowledged in ${Date.now() - started} ms, then node1 SIGKILLed`);
    const yText = M.text.toString();
    assert.equal(yText, Array.from({ length: EDITS }, (_, i) => `[y:${i}]\n`).join(""));

    // Read at once on node2 (which holds the Yjs room) and node3 (which holds neither): CONTRACT
    // §5, an acknowledged edit is committed in the shared database, and a read sees every
    // acknowledged edit. Then (whatever those reads said) nothing may be lost later either.
    const rooms = [
      ["the Yjs room", yRoom.id, yText],
      ["the legacy room", jRoom.id, legacyText],
    ];
    const atOnce = await Promise.all(
      [n2, n3].flatMap((node) => rooms.map(async ([what, id, want]) => ({ node, what, id, want, got: await readText(node, id) }))),
    );
    for (const r of atOnce) {
      const since = Date.now();
      await waitFor(async () => (await readText(r.node, r.id)) === r.want, {
        timeout: CONVERGE_MS,
        interval: 50,
        message: `${r.what} read on ${r.node.name} has all 50 edits`,
      });
      r.after = Date.now() - since;
    }
    await waitFor(() => W.text.toString() === yText, { timeout: CONVERGE_MS, message: "node2's provider has all 50 Yjs edits" });
    const late = await providerOn(t, p, n3, cy, jRoom.id);
    assert.equal(late.text.toString(), legacyText, "a provider joining on node3 syncs the 50 legacy edits");

    const back = await cluster.startNode(0);
    await cluster.waitForNodes(3);
    assert.equal(await readText(back, yRoom.id), yText, "the Yjs room read on node1 after its restart");
    assert.equal(await readText(back, jRoom.id), legacyText, "the legacy room read on node1 after its restart");
    const again = await providerOn(t, p, back, dee, yRoom.id);
    assert.equal(again.text.toString(), yText, "a provider on the restarted node1 syncs the 50 Yjs edits");

    const stale = atOnce
      .filter((r) => r.got !== r.want)
      .map((r) => `${r.what} read on ${r.node.name} at once had ${lineCount(r.got)}/${EDITS} edits (all ${r.after} ms later)`);
    assert.deepEqual(stale, [], "a read right after the last ack misses acknowledged edits");
  });
});

describe("a cluster whose bus loses and repeats frames", () => {
  test(`a bus that drops and repeats frames (${FAULTS}) changes nothing: text and presence converge on every node`, T, async (t) => {
    const p = poolFor(t);
    const fc = await startCluster({ nodes: 3, env: { DUET_TEST_BUS_FAULTS: FAULTS } });
    t.after(() => fc.stop());
    await fc.waitForNodes(3);
    const nodes = fc.nodes;
    const [n1, n2, n3] = nodes;
    const names = ["Ana", "Ben", "Cy", "Dee", "Eve", "Fay", "Obs1", "Obs2", "Obs3"];
    const u = Object.fromEntries(
      await Promise.all(names.map(async (n) => [n.toLowerCase(), await signIn(nodes[names.indexOf(n) % 3], n)])),
    );
    const ch = await createChallenge(n1, u.ana.token);

    // A watcher without Yjs on each node, three providers (one per node), a legacy editor.
    const watchers = [];
    for (let i = 0; i < 3; i++) watchers.push(await legacyOn(p, nodes[i], u[`obs${i + 1}`], ch.id));
    const A = await providerOn(t, p, n1, u.ana, ch.id);
    const B = await providerOn(t, p, n2, u.ben, ch.id);
    const C = await providerOn(t, p, n3, u.cy, ch.id);
    const D = await legacyOn(p, n2, u.dee, ch.id);
    const stay = [u.obs1, u.obs2, u.obs3, u.ana, u.ben, u.cy, u.dee];
    const everyone = [...watchers, A, B, C, D];
    await seeAll(everyone, stay, CONVERGE_MS);

    const marker = "<<LEGACY DEE>>\n";
    assert.equal((await push(D.channel, "response:update", { response: marker })).status, "ok");
    await waitFor(() => [A, B, C].every((m) => m.text.toString() === marker), { timeout: CONVERGE_MS, message: "Dee's edit on every node" });

    // Eve and Fay come and go on every node in turn while the providers type: each joins, makes
    // one acknowledged Yjs edit (typing: true), maybe says it stopped typing, and leaves (a
    // phx_leave, or its socket dropped).
    const churned = [];
    const churn = async () => {
      const rand = seeded(11);
      for (let k = 0; k < 6; k++) {
        const who = k % 2 ? u.fay : u.eve;
        const socket = await p.connect(nodes[k % 3], who.token, NO_RECONNECT);
        const M = new ManualYjsClient(socket, ch.id);
        await M.join();
        await waitFor(() => M.received >= 2, { timeout: 3000, message: "the server's sync steps" });
        const line = `[${who.user.first_name}:${k}]\n`;
        const r = await M.edit((text) => insertAtLineStart(text, line, rand));
        assert.equal(r.status, "ok", `${who.user.first_name}'s edit on node${(k % 3) + 1}: ${JSON.stringify(r)}`);
        churned.push(line);
        if (k % 3 === 1) await push(M.channel, "current_participant_typing:remove", {});
        await sleep(50 + Math.floor(rand() * 150));
        if (k % 2) rawTcpOf(socket).destroy();
        else await new Promise((done) => M.channel.leave(2000).receive("ok", done).receive("timeout", done));
      }
    };
    const typed = (
      await Promise.all([
        typeLines(A, "ana", 25, seeded(12), { gapMs: 40 }),
        typeLines(B, "ben", 25, seeded(13), { gapMs: 40 }),
        typeLines(C, "cy", 25, seeded(14), { gapMs: 40 }),
        churn(),
      ])
    )
      .slice(0, 3)
      .flat();
    const stopped = Date.now();
    const text = await converged({ yjs: [A, B, C], legacy: [...watchers, D], nodes, id: ch.id, token: u.ana.token, what: "the room under bus faults" });
    t.diagnostic(`text converged on every client ${Date.now() - stopped} ms after the last edit`);
    assertEach(text, [...typed, ...churned, marker], "every line typed");

    // Typing crosses the faulty bus both ways: Cy (node3) types, then says she stopped.
    C.text.insert(0, "[cy:typing]\n");
    const typingEverywhere = (on) => everyone.filter((m) => m !== C).every((m) => typingOf(m.pres, u.cy) === on);
    await waitFor(() => typingEverywhere(true), { timeout: 2000, message: "every other client sees Cy typing" });
    assert.equal((await push(C.provider.channel, "current_participant_typing:remove", {})).status, "ok");
    await waitFor(() => typingEverywhere(false), { timeout: 2000, message: "every other client sees Cy stop typing" });

    // Presence: Eve and Fay gone, nobody typing (the 3 s fallback), one meta per member, and
    // every client on every node sees the very same metas.
    await waitFor(
      () => everyone.every((m) => view(m.pres) === view(everyone[0].pres)) && !everyone[0].pres.list().some(({ metas }) => metas.some((x) => x.typing)),
      { timeout: TYPING_FALLBACK_MS + CONVERGE_MS, message: "every client shows the same presence, nobody typing" },
    ).catch((e) => {
      throw new Error(`${e.message}\n${everyone.map((m) => `  ${m.user.user.first_name}@${m.node.name}: ${view(m.pres)}`).join("\n")}`);
    });
    t.diagnostic(`presence settled ${Date.now() - stopped} ms after the last edit`);
    await seeAll(everyone, stay, 0);
    assert.ok(everyone[0].pres.list().every(({ metas }) => metas.length === 1), `one meta each: ${view(everyone[0].pres)}`);
    // And it stays so (no late duplicate or stale frame undoes it).
    await sleep(1000);
    assert.ok(everyone.every((m) => view(m.pres) === view(everyone[0].pres)), "presence still the same everywhere a second later");
    const final = await converged({ yjs: [A, B, C], legacy: [...watchers, D], nodes, id: ch.id, token: u.ana.token, timeout: 0 });
    assert.equal(final, `[cy:typing]\n${text}`);

    // The faults were there and were repaired (not a run where the bus happened to lose nothing).
    const counters = await busCounters(nodes);
    t.diagnostic(`bus counters, summed over the nodes: ${JSON.stringify(counters)}`);
    for (const name of ["duet_bus_fetched_updates_total", "duet_bus_duplicate_updates_total", "duet_bus_presence_resyncs_total"]) {
      assert.ok(counters[name] > 0, `${name} is ${counters[name]}: the faults did not show`);
    }
  });
});

describe("a cluster whose bus loses every room frame", () => {
  // The smallest case of a read on a node that holds the room but missed the bus frame of an
  // edit acknowledged on another node (as when that node dies before publishing, or Redis loses
  // it): the read must still see the edit (CONTRACT §5; server/src/challenges/read.rs's rule),
  // not wait for the room's next head check.
  test("a read on a node whose room missed another node's edit still sees every acknowledged edit", T, async (t) => {
    const p = poolFor(t);
    const dc = await startCluster({ nodes: 2, env: { DUET_TEST_BUS_FAULTS: "drop=1" } });
    t.after(() => dc.stop());
    await dc.waitForNodes(2);
    const [n1, n2] = dc.nodes;
    const eve = await signIn(n1, "Eve");
    const results = [];
    for (const kind of ["response:update", "yjs"]) {
      const ch = await createChallenge(n1, eve.token);
      await providerOn(t, p, n2, eve, ch.id); // node2 holds the room
      const want = `acked on node1 (${kind})`;
      let r;
      if (kind === "yjs") {
        const M = new ManualYjsClient(await p.connect(n1, eve.token), ch.id);
        await M.join();
        await waitFor(() => M.received >= 2, { timeout: 3000, message: "the server's sync steps" });
        r = await M.edit((text) => text.insert(0, want));
      } else {
        r = await push((await legacyOn(p, n1, eve, ch.id)).channel, "response:update", { response: want });
      }
      assert.equal(r.status, "ok", `${kind} edit: ${JSON.stringify(r)}`);
      const got = await readText(n2, ch.id, eve.token);
      const since = Date.now();
      await waitFor(async () => (await readText(n2, ch.id, eve.token)) === want, {
        timeout: CONVERGE_MS,
        interval: 20,
        message: `node2's read has the ${kind} edit`,
      });
      results.push(got === want ? null : `${kind}: the read on node2 right after the ack said ${JSON.stringify(got)}; ${Date.now() - since} ms later it had the edit`);
    }
    assert.deepEqual(results.filter(Boolean), [], "a read on node2 right after node1 acknowledged an edit");
  });
});
