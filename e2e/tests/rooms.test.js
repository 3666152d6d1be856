// Challenge rooms (CONTRACT §3): the seed's events, Yjs through y-phoenix-channel,
// awareness, invalid updates, durability across SIGKILL and restarts.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, signIn, createChallenge, startWithUsers, stopServer } from "../lib/server.js";
import { SocketPool, join, tryJoin, push, collect, nextEvent, waitFor, sleep, rawTcpOf, arrayBufferOf, poolFor } from "../lib/phx.js";
import { trackPresence } from "../lib/presence.js";
import { api } from "../lib/http.js";
import * as decoding from "lib0/decoding";
import { Y, openProvider, closeProvider, syncUpdateMessage, syncStep1Message, ManualYjsClient } from "../lib/yjs.js";

const T = { timeout: 30000 };

let server;
let alice, bob, carol;

before(async () => {
  ({ server, alice, bob, carol } = await startWithUsers({}, "Alice", "Bob", "Carol"));
});

after(() => stopServer(server));


function destroyProvidersAfter(t, ...providers) {
  t.after(() => providers.forEach((x) => closeProvider(x)));
}

/** Alice (socket options `aliceOpts`) and Bob with y-phoenix-channel providers in a new room. */
async function twoProviders(t, aliceOpts = {}) {
  const p = poolFor(t);
  const ch = await createChallenge(server, alice.token);
  const [sa, sb] = await Promise.all([p.connect(server, alice.token, aliceOpts), p.connect(server, bob.token)]);
  const A = await openProvider(sa, ch.id);
  const B = await openProvider(sb, ch.id);
  destroyProvidersAfter(t, A, B);
  return { p, ch, sa, sb, A, B };
}

async function getChallenge(srv, token, id) {
  const r = await api(srv, "GET", `/api/challenges/${id}`, { token });
  assert.equal(r.status, 200, `GET challenge ${id}: ${r.status} ${r.text}`);
  return r.body.challenge;
}

/** Wait until GET /api/challenges/:id returns `text`. */
async function waitServerText(srv, token, id, text, timeout = 3000) {
  let last;
  await waitFor(
    async () => {
      last = (await getChallenge(srv, token, id)).response;
      return last === text;
    },
    { timeout, interval: 50, message: `GET /api/challenges/${id} response === ${JSON.stringify(text).slice(0, 200)}` },
  ).catch((e) => {
    throw new Error(`${e.message}; server has ${JSON.stringify(last).slice(0, 300)}`);
  });
}

async function enterLegacy(p, user, id, opts = {}) {
  const socket = await p.connect(server, user.token, opts);
  const channel = socket.channel(`challenges:${id}`, {});
  const pres = trackPresence(channel);
  const updated = collect(channel, "response:updated");
  const response = await join(channel);
  return { socket, channel, pres, updated, response };
}

describe("joining a room", () => {
  test("unknown id: error {reason: not found}", T, async (t) => {
    const p = poolFor(t);
    const s = await p.connect(server, alice.token);
    for (const id of ["does-not-exist", "AAAAAAAAAAAAAAAA", ""]) {
      const r = await tryJoin(s.channel(`challenges:${id}`, {}));
      assert.deepEqual(r, { status: "error", response: { reason: "not found" } }, `challenges:${id}`);
    }
  });

  test("ok reply carries the challenge, as GET /api/challenges/:id returns it", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token, { title: "Two sum", prompt: "Find <b>two</b> numbers", language: "python" });
    // another user who knows the URL can join
    const b = await enterLegacy(p, bob, ch.id);
    const got = await getChallenge(server, bob.token, ch.id);
    assert.deepEqual(b.response.challenge, got);
    assert.deepEqual(Object.keys(b.response), ["challenge"], `CONTRACT §3: join ok reply is {"challenge": <challenge>}, got keys ${JSON.stringify(Object.keys(b.response))}`);
    for (const k of ["id", "title", "prompt", "response", "language", "created_at", "updated_at"]) {
      assert.ok(k in b.response.challenge, `challenge has ${k}`);
    }
    assert.equal(b.response.challenge.title, "Two sum");
    assert.equal(b.response.challenge.prompt, "Find <b>two</b> numbers");
    assert.equal(b.response.challenge.response, "");
  });
});

describe("the seed's events (no Yjs)", () => {
  test("response:update: every member incl. the sender gets response:updated; ok reply {}; GET returns it", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enterLegacy(p, alice, ch.id);
    const b = await enterLegacy(p, bob, ch.id);
    await waitFor(() => a.pres.list().length === 2 && b.pres.list().length === 2, { timeout: 2000, message: "both present" });

    const text1 = "def fizzbuzz(n):\n    return 'héllo ✓'\n";
    assert.deepEqual(await push(a.channel, "response:update", { response: text1 }), { status: "ok", response: {} });
    await waitFor(() => a.updated.length >= 1 && b.updated.length >= 1, { timeout: 2000, message: "response:updated on both" });
    for (const ev of [a.updated[0], b.updated[0]]) {
      assert.equal(ev.user_id, alice.user.id);
      assert.equal(ev.challenge.id, ch.id);
      assert.equal(ev.challenge.response, text1);
      assert.equal(ev.challenge.title, ch.title);
    }
    await waitServerText(server, alice.token, ch.id, text1);

    const text2 = text1.replace("héllo", "bonjour") + "# bob was here\n";
    assert.deepEqual(await push(b.channel, "response:update", { response: text2 }), { status: "ok", response: {} });
    await waitFor(() => a.updated.some((e) => e.challenge.response === text2 && e.user_id === bob.user.id), {
      timeout: 2000,
      message: "alice gets bob's update",
    });
    await waitServerText(server, alice.token, ch.id, text2);
    // clearing the text works too
    assert.deepEqual(await push(a.channel, "response:update", { response: "" }), { status: "ok", response: {} });
    await waitServerText(server, alice.token, ch.id, "");
  });

  test("typing: true after an edit, false after current_participant_typing:remove, and false by itself ~3 s after the last edit", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enterLegacy(p, alice, ch.id);
    const b = await enterLegacy(p, bob, ch.id);
    const bobTyping = () => a.pres.byKey(bob.user.id)?.metas?.[0]?.typing;
    await waitFor(() => bobTyping() === false, { timeout: 2000, message: "bob present, not typing" });

    await push(b.channel, "response:update", { response: "x" });
    await waitFor(() => bobTyping() === true, { timeout: 2000, message: "bob typing" });
    await push(b.channel, "current_participant_typing:remove", {});
    await waitFor(() => bobTyping() === false, { timeout: 2000, message: "bob stopped typing" });

    const editedAt = Date.now();
    await push(b.channel, "response:update", { response: "xy" });
    await waitFor(() => bobTyping() === true, { timeout: 2000, message: "bob typing again" });
    await waitFor(() => bobTyping() === false, { timeout: 5000, interval: 50, message: "typing false by itself" });
    const after = Date.now() - editedAt;
    assert.ok(after >= 2000 && after <= 4500, `typing fell back to false after ${after} ms (expected ~3000)`);
  });
});

describe("Yjs via y-phoenix-channel", () => {
  test("two providers typing concurrently at the same positions converge with nothing lost; GET agrees", T, async (t) => {
    const { ch, A, B } = await twoProviders(t);

    A.text.insert(0, "0123456789");
    await waitFor(() => B.text.toString() === "0123456789", { timeout: 3000, message: "B sees A's first text" });
    // concurrent deletes of overlapping ranges: the union is deleted, once
    A.text.delete(2, 3);
    B.text.delete(3, 3);
    await waitFor(() => A.text.toString() === B.text.toString() && A.text.toString() === "016789", {
      timeout: 3000,
      message: `overlapping deletes converge to 016789 (A=${A.text.toString()} B=${B.text.toString()})`,
    });

    const tokens = [];
    for (let round = 0; round < 25; round++) {
      const atEnd = round % 2 === 1;
      const ta = `<a${round}>`, tb = `[b${round}]`;
      tokens.push(ta, tb);
      // same tick: neither has seen the other's insert
      A.text.insert(atEnd ? A.text.length : 0, ta);
      B.text.insert(atEnd ? B.text.length : 0, tb);
      await sleep(round % 3 === 0 ? 0 : 15);
    }
    await waitFor(() => A.text.toString() === B.text.toString() && tokens.every((x) => A.text.toString().includes(x)), {
      timeout: 5000,
      message: "A and B converge with every token",
    }).catch((e) => {
      throw new Error(`${e.message}\nA=${A.text.toString()}\nB=${B.text.toString()}`);
    });
    const final = A.text.toString();
    for (const x of tokens) assert.equal(final.split(x).length - 1, 1, `${x} appears once`);
    assert.equal(final.length, "016789".length + tokens.join("").length);
    await waitServerText(server, alice.token, ch.id, final);
  });

  test("a provider on phoenix.js's LongPoll syncs, edits and converges with one on WebSocket", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const sb = await p.connect(server, bob.token);
    const B = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, B);
    B.text.insert(0, "before ");
    await waitServerText(server, alice.token, ch.id, "before ");
    // Over long-poll every yjs push and relay arrives as JSON: the provider
    // must still read it (sync step 2 brings what B wrote before).
    const sa = await p.connect(server, alice.token, { transport: "longpoll" });
    const errors = [];
    const A = await openProvider(sa, ch.id).catch((e) => {
      throw new Error(`the long-poll provider never synced: ${e.message}`);
    });
    destroyProvidersAfter(t, A);
    A.provider.on("status", (s) => s.status === "disconnected" && errors.push(s));
    await waitFor(() => A.text.toString() === "before ", { timeout: 3000, message: `A (long-poll) has B's text, got ${JSON.stringify(A.text.toString())}` });
    for (let i = 0; i < 10; i++) {
      A.text.insert(A.text.length, `a${i} `);
      B.text.insert(0, `b${i} `);
      await sleep(10);
    }
    await waitFor(() => A.text.toString() === B.text.toString() && A.text.toString().length === "before ".length + 60, {
      timeout: 5000,
      message: "A (long-poll) and B (WebSocket) converge",
    }).catch((e) => {
      throw new Error(`${e.message}\nA=${A.text.toString()}\nB=${B.text.toString()}`);
    });
    await waitServerText(server, alice.token, ch.id, A.text.toString());
    // Awareness travels over long-poll too.
    B.provider.awareness.setLocalStateField("user", { name: "Bob" });
    await waitFor(() => [...A.provider.awareness.getStates().values()].some((s) => s.user?.name === "Bob"), {
      timeout: 3000,
      message: "A (long-poll) sees B's awareness",
    });
    assert.deepEqual(errors, [], "the long-poll provider stayed connected");
  });

  test("six providers making random concurrent inserts and deletes converge; GET agrees", { timeout: 40000 }, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const users = [alice, bob, carol];
    const clients = [];
    for (let i = 0; i < 6; i++) {
      const s = await p.connect(server, users[i % 3].token);
      clients.push(await openProvider(s, ch.id));
    }
    destroyProvidersAfter(t, ...clients);
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const inserted = [];
    const until = Date.now() + 2000;
    let n = 0;
    while (Date.now() < until) {
      for (const c of clients) {
        const len = c.text.length;
        if (len > 20 && rand() < 0.3) {
          const at = Math.floor(rand() * (len - 3));
          c.text.delete(at, 1 + Math.floor(rand() * 3));
        } else {
          const s = `${String.fromCharCode(97 + (n % 26))}${n}`;
          inserted.push(s);
          c.text.insert(Math.floor(rand() * (len + 1)), s);
          n++;
        }
      }
      await sleep(Math.floor(rand() * 20));
    }
    const same = () => clients.every((c) => c.text.toString() === clients[0].text.toString());
    await waitFor(same, { timeout: 8000, message: "six providers converge" }).catch((e) => {
      throw new Error(`${e.message}\n${clients.map((c, i) => `${i}: ${c.text.toString().slice(0, 120)}`).join("\n")}`);
    });
    t.diagnostic(`${n} inserts; final length ${clients[0].text.length}`);
    await waitServerText(server, alice.token, ch.id, clients[0].text.toString(), 5000);
    // a late joiner gets the same text
    const late = await openProvider(await p.connect(server, bob.token), ch.id);
    destroyProvidersAfter(t, late);
    assert.equal(late.text.toString(), clients[0].text.toString());
  });

  test("a client speaking Yjs that sends response:update gets its own edit as a yjs update", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const M = new ManualYjsClient(await p.connect(server, alice.token), ch.id);
    await M.join();
    const sb = await p.connect(server, bob.token);
    const Pb = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, Pb);
    await waitFor(() => M.received >= 2, { timeout: 3000, message: "the server's sync steps" });
    assert.deepEqual(await push(M.channel, "response:update", { response: "abc" }), { status: "ok", response: {} });
    await waitFor(() => M.text.toString() === "abc", { timeout: 3000, message: "the sender's own document has its JSON edit" });
    await waitFor(() => Pb.text.toString() === "abc", { timeout: 3000, message: "the other Yjs member has it" });
    assert.equal((await M.edit((text) => text.insert(3, "!"))).status, "ok");
    await waitFor(() => Pb.text.toString() === "abc!", { timeout: 3000, message: "a later Yjs edit lands after it" });
    await waitServerText(server, alice.token, ch.id, "abc!");
  });

  test("updated_at: GET and the list give the time of the last edit, as response:updated told it", { timeout: 30000 }, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enterLegacy(p, alice, ch.id);
    const check = async (label) => {
      const told = a.updated[a.updated.length - 1].challenge;
      const got = await getChallenge(server, alice.token, ch.id);
      assert.equal(got.response, told.response, `${label}: GET response`);
      assert.equal(got.updated_at, told.updated_at, `${label}: GET updated_at`);
      const list = await api(server, "GET", "/api/challenges", { token: alice.token });
      const listed = list.body.challenges.find((c) => c.id === ch.id);
      assert.equal(listed.updated_at, told.updated_at, `${label}: listed updated_at`);
      return told.updated_at;
    };
    await sleep(20);
    assert.equal((await push(a.channel, "response:update", { response: "one" })).status, "ok");
    await waitFor(() => a.updated.length === 1, { timeout: 2000, message: "first response:updated" });
    const first = await check("first edit");
    assert.ok(first > ch.updated_at, `${first} after creation ${ch.updated_at}`);
    await sleep(300);
    assert.equal((await push(a.channel, "response:update", { response: "two" })).status, "ok");
    await waitFor(() => a.updated.length === 2, { timeout: 2000, message: "second response:updated" });
    const second = await check("second edit (text written later)");
    assert.ok(second > first, `${second} after ${first}`);
    await sleep(5600); // the room's text is now in the database too
    assert.equal(await check("once written"), second);
  });

  test("a Yjs edit sets the sender's typing; a legacy client and a Yjs client converge", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const L = await enterLegacy(p, alice, ch.id);
    const sb = await p.connect(server, bob.token);
    const Pb = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, Pb);
    await waitFor(() => L.pres.byKey(bob.user.id), { timeout: 2000, message: "bob (Yjs) present" });

    // legacy → Yjs
    const t1 = "hello world";
    assert.deepEqual(await push(L.channel, "response:update", { response: t1 }), { status: "ok", response: {} });
    await waitFor(() => Pb.text.toString() === t1, { timeout: 3000, message: "Yjs client gets the legacy edit" });

    // Yjs → legacy (response:updated, at most every 100 ms, always the final state)
    Pb.text.insert(Pb.text.length, " from yjs");
    for (let i = 0; i < 10; i++) Pb.text.insert(Pb.text.length, `${i}`);
    const expected = "hello world from yjs0123456789";
    assert.equal(Pb.text.toString(), expected);
    await waitFor(() => L.updated.length > 0 && L.updated[L.updated.length - 1].challenge.response === expected, {
      timeout: 3000,
      message: "the legacy client's last response:updated is the final Yjs text",
    });
    const last = L.updated[L.updated.length - 1];
    assert.equal(last.user_id, bob.user.id, "response:updated names the Yjs editor");
    await waitFor(() => L.pres.byKey(bob.user.id)?.metas?.[0]?.typing === true, {
      timeout: 2000,
      message: "a Yjs edit sets typing: true",
    });

    // concurrent: legacy rewrites the end while Yjs inserts at the start
    const legacyText = expected + " + legacy";
    const legacyPush = push(L.channel, "response:update", { response: legacyText });
    Pb.text.insert(0, ">> ");
    assert.equal((await legacyPush).status, "ok");
    await waitFor(
      async () => {
        const lastL = L.updated[L.updated.length - 1]?.challenge.response;
        const server_ = (await getChallenge(server, alice.token, ch.id)).response;
        return lastL === Pb.text.toString() && server_ === lastL;
      },
      { timeout: 4000, interval: 50, message: "legacy view, Yjs view and GET agree" },
    ).catch((e) => {
      throw new Error(`${e.message}\nlegacy=${L.updated[L.updated.length - 1]?.challenge.response}\nyjs=${Pb.text.toString()}`);
    });
    assert.ok(Pb.text.toString().includes(" + legacy"), "the legacy edit is in the document");
  });

  test("a provider that was offline catches up when it reconnects, and its offline edits reach the others", T, async (t) => {
    const { ch, sb, A, B } = await twoProviders(t);
    A.text.insert(0, "start\n");
    await waitFor(() => B.text.toString() === "start\n", { timeout: 3000, message: "B synced" });

    await new Promise((resolve) => sb.disconnect(resolve));
    for (let i = 0; i < 5; i++) A.text.insert(A.text.length, `online ${i}\n`);
    B.text.insert(0, "offline edit\n");
    await sleep(300);
    assert.ok(!A.text.toString().includes("offline edit"), "B's offline edit cannot have arrived yet");

    sb.connect();
    const expectParts = ["start\n", "offline edit\n", ...Array.from({ length: 5 }, (_, i) => `online ${i}\n`)];
    await waitFor(
      () => A.text.toString() === B.text.toString() && expectParts.every((x) => A.text.toString().includes(x)),
      { timeout: 8000, message: "A and B converge after B reconnects" },
    ).catch((e) => {
      throw new Error(`${e.message}\nA=${JSON.stringify(A.text.toString())}\nB=${JSON.stringify(B.text.toString())}`);
    });
    await waitServerText(server, alice.token, ch.id, A.text.toString());
  });

  test("awareness reaches the others, is sent to late joiners, and vanishes when its owner leaves or drops", T, async (t) => {
    const { p, ch, sa, A, B } = await twoProviders(t, { reconnectAfterMs: () => 60000 });
    A.provider.awareness.setLocalStateField("user", { name: "Alice" });
    A.provider.awareness.setLocalStateField("cursor", { anchor: 3, head: 5 });
    const aId = A.doc.clientID, bId = B.doc.clientID;
    await waitFor(() => B.provider.awareness.getStates().get(aId)?.cursor?.head === 5, {
      timeout: 3000,
      message: "B sees A's cursor",
    });
    B.provider.awareness.setLocalStateField("cursor", { anchor: 0, head: 1 });
    await waitFor(() => A.provider.awareness.getStates().get(bId)?.cursor?.head === 1, { timeout: 3000, message: "A sees B's cursor" });

    // a late joiner gets the current states of the others from the server
    const sc = await p.connect(server, carol.token);
    const C = await openProvider(sc, ch.id);
    destroyProvidersAfter(t, C);
    await waitFor(
      () => C.provider.awareness.getStates().get(aId)?.cursor?.head === 5 && C.provider.awareness.getStates().get(bId)?.cursor?.head === 1,
      { timeout: 3000, message: "a late joiner sees A's and B's cursors" },
    );

    // A's connection drops without any goodbye: the server removes A's awareness state
    rawTcpOf(sa).destroy();
    await waitFor(() => !B.provider.awareness.getStates().has(aId) && !C.provider.awareness.getStates().has(aId), {
      timeout: 3000,
      message: "A's awareness state removed for B and C after A dropped",
    });

    // B leaves the room the normal way
    B.provider.destroy();
    await waitFor(() => !C.provider.awareness.getStates().has(bId), { timeout: 3000, message: "B's state gone after B left" });
  });

  test("garbage and truncated yjs pushes get error {reason: invalid update}; the document is unchanged", T, async (t) => {
    const { ch, A, B } = await twoProviders(t);
    A.text.insert(0, "keep me");
    await waitFor(() => B.text.toString() === "keep me", { timeout: 3000, message: "B synced" });
    await waitServerText(server, alice.token, ch.id, "keep me");

    // a valid update made on a separate doc that knows the current state
    const other = new Y.Doc();
    Y.applyUpdate(other, Y.encodeStateAsUpdate(A.doc));
    const sv = Y.encodeStateVector(other);
    other.getText("response").insert(7, " and this text that must never arrive");
    const update = Y.encodeStateAsUpdate(other, sv);
    const valid = syncUpdateMessage(update);
    // the same update with a consistent length prefix but its last bytes cut
    const cutUpdate = update.subarray(0, update.length - 6);
    const innerTruncated = syncUpdateMessage(cutUpdate);

    const cases = [
      ["garbage update", new Uint8Array([0, 2, 5, 0xff, 0xff, 0xff, 0xff, 0xff])],
      ["sync message cut short", valid.subarray(0, valid.length - 4)],
      ["update truncated inside", innerTruncated],
      ["empty payload", new Uint8Array(0)],
      ["sync type without a body", new Uint8Array([0])],
      ["unterminated varint", new Uint8Array([0xff, 0xff, 0xff])],
    ];
    for (const [name, bytes] of cases) {
      const r = await push(A.provider.channel, "yjs", arrayBufferOf(bytes), 3000);
      assert.deepEqual(r, { status: "error", response: { reason: "invalid update" } }, name);
    }
    await sleep(300);
    assert.equal(B.text.toString(), "keep me", "the other member's document is unchanged");
    assert.equal((await getChallenge(server, alice.token, ch.id)).response, "keep me");
    // the room still works
    A.text.insert(7, "!");
    await waitFor(() => B.text.toString() === "keep me!", { timeout: 3000, message: "edits still flow" });
    await waitServerText(server, alice.token, ch.id, "keep me!");
  });
});

describe("Yjs details and mixed clients", () => {
  test("yjs_sync is answered with sync step 2, then the server's sync step 1, then the others' awareness", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const sb = await p.connect(server, bob.token);
    const B = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, B);
    B.text.insert(0, "already here");
    B.provider.awareness.setLocalStateField("cursor", { anchor: 1, head: 2 });
    await waitServerText(server, bob.token, ch.id, "already here");

    const sa = await p.connect(server, alice.token);
    const chan = sa.channel(`challenges:${ch.id}`, {});
    const got = collect(chan, "yjs");
    await join(chan);
    await sleep(100);
    const before = got.length;
    chan.push("yjs_sync", arrayBufferOf(syncStep1Message(new Y.Doc())));
    await waitFor(() => got.length >= before + 3, { timeout: 3000, message: "three yjs answers to yjs_sync" });
    const answers = got.slice(before).map((b) => {
      assert.ok(b instanceof ArrayBuffer, "yjs pushes are binary");
      return new Uint8Array(b);
    });
    assert.deepEqual([answers[0][0], answers[0][1]], [0, 1], "first: sync step 2");
    assert.deepEqual([answers[1][0], answers[1][1]], [0, 0], "second: the server's sync step 1");
    assert.equal(answers[2][0], 1, "third: awareness");
    // step 2 carries the document
    const doc = new Y.Doc();
    const dec = decoding.createDecoder(answers[0]);
    decoding.readVarUint(dec);
    decoding.readVarUint(dec);
    Y.applyUpdate(doc, decoding.readVarUint8Array(dec));
    assert.equal(doc.getText("response").toString(), "already here");
    // the awareness message carries Bob's state
    const aw = decoding.createDecoder(answers[2]);
    decoding.readVarUint(aw);
    const inner = decoding.createDecoder(decoding.readVarUint8Array(aw));
    const n = decoding.readVarUint(inner);
    const states = {};
    for (let i = 0; i < n; i++) {
      const client = decoding.readVarUint(inner);
      decoding.readVarUint(inner); // clock
      states[client] = JSON.parse(decoding.readVarString(inner));
    }
    assert.deepEqual(states[B.doc.clientID]?.cursor, { anchor: 1, head: 2 }, `awareness states: ${JSON.stringify(states)}`);
    doc.destroy();
  });

  test("response:updated for Yjs edits comes at most every 100 ms and always ends with the final state", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const L = await enterLegacy(p, alice, ch.id);
    const sb = await p.connect(server, bob.token);
    const Pb = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, Pb);
    await sleep(200);
    const start = L.updated.length;
    const began = Date.now();
    for (let i = 0; i < 60; i++) {
      Pb.text.insert(Pb.text.length, String(i % 10));
      await sleep(15);
    }
    const took = Date.now() - began;
    const final = Pb.text.toString();
    await waitFor(() => L.updated.length > start && L.updated[L.updated.length - 1].challenge.response === final, {
      timeout: 3000,
      message: "the final state reaches the legacy client",
    });
    await sleep(300);
    const events = L.updated.slice(start);
    const bound = Math.ceil(took / 100) + 2;
    assert.ok(events.length <= bound, `${events.length} response:updated in ${took} ms (at most ${bound} expected)`);
    assert.equal(events[events.length - 1].challenge.response, final);
    assert.ok(events.every((e) => e.user_id === bob.user.id));
  });

  test("a long-poll client uses the seed's events alongside a WebSocket Yjs client", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const L = await enterLegacy(p, alice, ch.id, { transport: "longpoll" });
    const sb = await p.connect(server, bob.token);
    const Pb = await openProvider(sb, ch.id);
    destroyProvidersAfter(t, Pb);
    await waitFor(() => L.pres.byKey(bob.user.id) && L.pres.byKey(alice.user.id), { timeout: 3000, message: "long-poll presence lists both" });
    assert.deepEqual(await push(L.channel, "response:update", { response: "over long-poll" }), { status: "ok", response: {} });
    await waitFor(() => Pb.text.toString() === "over long-poll", { timeout: 3000, message: "Yjs client sees the long-poll edit" });
    Pb.text.insert(0, ">");
    await waitFor(() => L.updated[L.updated.length - 1]?.challenge.response === ">over long-poll", {
      timeout: 3000,
      message: "long-poll client gets response:updated for the Yjs edit",
    });
  });
});

describe("durability", () => {
  test("every acknowledged edit survives SIGKILL (response:update and yjs)", { timeout: 60000 }, async (t) => {
    let srv = await startServer();
    t.after(async () => {
      await srv.kill();
      srv.cleanup();
    });
    const u = await signIn(srv, "Durable");
    const legacyRoom = await createChallenge(srv, u.token, { title: "legacy" });
    const yjsRoom = await createChallenge(srv, u.token, { title: "yjs" });
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const s1 = await p.connect(srv, u.token, { reconnectAfterMs: () => 60000 });
    const s2 = await p.connect(srv, u.token, { reconnectAfterMs: () => 60000 });

    // legacy: sequential full-text updates, each acknowledged
    const lch = s1.channel(`challenges:${legacyRoom.id}`, {});
    await join(lch);
    let lastAcked = null;
    let text = "";
    for (let i = 0; i < 20; i++) {
      text += `line ${i}\n`;
      const r = await push(lch, "response:update", { response: text });
      assert.equal(r.status, "ok", `legacy edit ${i}: ${JSON.stringify(r)}`);
      lastAcked = text;
    }

    // yjs: pipelined edits; kill as soon as 25 of 40 are acknowledged
    const Yc = new ManualYjsClient(s2, yjsRoom.id);
    await Yc.join();
    await sleep(200);
    const acked = [];
    let killed = false;
    const killing = new Promise((resolve) => {
      const edits = [];
      for (let i = 0; i < 40; i++) {
        const frag = `edit ${i};`;
        edits.push(
          Yc.edit((txt) => txt.insert(txt.length, frag)).then((r) => {
            if (r.status === "ok" && !killed) {
              acked.push(frag);
              if (acked.length === 25) {
                killed = true;
                resolve(srv.kill());
              }
            }
          }),
        );
      }
      Promise.all(edits).then(() => resolve(srv.kill()));
    });
    await killing;
    await srv.kill();
    assert.ok(acked.length >= 25, `acknowledged yjs edits before the kill: ${acked.length}`);
    await p.closeAll();

    const restarted = new Date().toISOString();
    srv = await startServer({ dataDir: srv.dataDir });
    const legacyAfter = await getChallenge(srv, u.token, legacyRoom.id);
    assert.equal(legacyAfter.response, lastAcked, "the last acknowledged response:update survived");
    const yjsAfter = await getChallenge(srv, u.token, yjsRoom.id);
    for (const [c, before] of [[legacyAfter, legacyRoom], [yjsAfter, yjsRoom]]) {
      // the time of the last edit, not of the restart that repaired the text
      assert.ok(c.updated_at > before.updated_at && c.updated_at < restarted, `updated_at ${c.updated_at}: edited after ${before.updated_at}, before the restart at ${restarted}`);
    }
    const missing = acked.filter((frag) => !yjsAfter.response.includes(frag));
    assert.deepEqual(missing, [], `acknowledged yjs edits missing after SIGKILL; server has ${JSON.stringify(yjsAfter.response)}`);

    // and a new Yjs client gets the same text
    const s3 = await p.connect(srv, u.token);
    const P = await openProvider(s3, yjsRoom.id);
    t.after(() => closeProvider(P));
    assert.equal(P.text.toString(), yjsAfter.response);
  });

  test("hundreds of acknowledged edits across snapshots survive SIGKILL exactly", { timeout: 60000 }, async (t) => {
    const env = { DUET_SNAPSHOT_EVERY: "50" };
    let srv = await startServer({ env });
    t.after(async () => {
      await srv.kill();
      srv.cleanup();
    });
    const u = await signIn(srv, "Snapshots");
    const room = await createChallenge(srv, u.token);
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const s = await p.connect(srv, u.token, { reconnectAfterMs: () => 60000 });
    const Yc = new ManualYjsClient(s, room.id);
    await Yc.join();
    let expected = "";
    for (let batch = 0; batch < 4; batch++) {
      const pushes = [];
      for (let i = 0; i < 80; i++) {
        const k = batch * 80 + i;
        if (k % 7 === 6) {
          // a delete now and then: the last character
          expected = expected.slice(0, -1);
          pushes.push(Yc.edit((txt) => txt.delete(txt.length - 1, 1)));
        } else {
          const frag = `${k},`;
          expected += frag;
          pushes.push(Yc.edit((txt) => txt.insert(txt.length, frag)));
        }
      }
      const results = await Promise.all(pushes);
      const bad = results.filter((r) => r.status !== "ok");
      assert.deepEqual(bad, [], `batch ${batch}: every edit acknowledged`);
      await sleep(400); // stay under the socket rate limit
    }
    assert.equal(Yc.text.toString(), expected);
    await srv.kill();
    await p.closeAll();
    srv = await startServer({ dataDir: srv.dataDir, env });
    assert.equal((await getChallenge(srv, u.token, room.id)).response, expected, "text after SIGKILL");
    const s2 = await p.connect(srv, u.token);
    const P = await openProvider(s2, room.id);
    t.after(() => closeProvider(P));
    assert.equal(P.text.toString(), expected, "a Yjs client after the restart");
  });

  test("a room unloaded after everyone left comes back with its text", { timeout: 30000 }, async (t) => {
    const srv = await startServer({ env: { DUET_ROOM_GRACE_MS: "100" } });
    t.after(() => stopServer(srv));
    const u = await signIn(srv, "Grace");
    const room = await createChallenge(srv, u.token);
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const s = await p.connect(srv, u.token);
    const A = await openProvider(s, room.id);
    A.text.insert(0, "before the room was unloaded");
    await waitServerText(srv, u.token, room.id, "before the room was unloaded");
    closeProvider(A);
    await sleep(800);
    const B = await openProvider(s, room.id);
    t.after(() => closeProvider(B));
    assert.equal(B.text.toString(), "before the room was unloaded");
    B.text.insert(0, "again: ");
    await waitServerText(srv, u.token, room.id, "again: before the room was unloaded");
  });

  test("a restart keeps every challenge and its text", { timeout: 60000 }, async (t) => {
    let srv = await startServer();
    t.after(() => stopServer(srv));
    const u = await signIn(srv, "Keeper");
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const s = await p.connect(srv, u.token, { reconnectAfterMs: () => 60000 });
    const rooms = [];
    for (let i = 0; i < 3; i++) {
      const c = await createChallenge(srv, u.token, { title: `keep ${i}`, prompt: `prompt ${i}` });
      const chn = s.channel(`challenges:${c.id}`, {});
      await join(chn);
      const text = `answer ${i}: ${"λ".repeat(i + 1)}\n`;
      assert.equal((await push(chn, "response:update", { response: text })).status, "ok");
      rooms.push({ id: c.id, title: c.title, text });
    }
    // one more through Yjs
    const yroom = await createChallenge(srv, u.token, { title: "keep yjs" });
    const Yc = new ManualYjsClient(s, yroom.id);
    await Yc.join();
    assert.equal((await Yc.edit((txt) => txt.insert(0, "typed with yjs"))).status, "ok");
    rooms.push({ id: yroom.id, title: "keep yjs", text: "typed with yjs" });
    await p.closeAll();

    await srv.stop();
    srv = await startServer({ dataDir: srv.dataDir });
    const list = await api(srv, "GET", "/api/challenges", { token: u.token });
    assert.equal(list.status, 200);
    const byId = new Map(list.body.challenges.map((c) => [c.id, c]));
    for (const r of rooms) {
      assert.ok(byId.has(r.id), `challenge ${r.title} still listed`);
      assert.equal(byId.get(r.id).response, r.text, `text of ${r.title} in the list`);
      assert.equal((await getChallenge(srv, u.token, r.id)).response, r.text, `text of ${r.title}`);
    }
    const s2 = await p.connect(srv, u.token);
    const P = await openProvider(s2, rooms[0].id);
    t.after(() => closeProvider(P));
    assert.equal(P.text.toString(), rooms[0].text, "a Yjs client gets the restored text");
  });
});
