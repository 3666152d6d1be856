// Phoenix Presence in `challenges:<id>` (CONTRACT §3), checked with phoenix.js's Presence.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { signIn, createChallenge, startWithUsers, stopServer } from "../lib/server.js";
import { join, push, collect, waitFor, sleep, rawTcpOf, disconnect, poolFor } from "../lib/phx.js";
import { trackPresence } from "../lib/presence.js";

const T = { timeout: 30000 };
// "A closed or crashed socket leaves within 1 s" (+ a little slack for the client's own event loop)
const LEAVE_WITHIN_MS = 1000;
const SLACK_MS = 150;

let server;
let alice, bob, carol;

before(async () => {
  ({ server, alice, bob, carol } = await startWithUsers({}, "Alice", "Bob", "Carol"));
});

after(() => stopServer(server));


/** Bob's leave reaches `a` within 1 s of `started`, and only Alice is left. */
async function assertBobLeftWithin1s(a, started, message) {
  await waitFor(() => a.pres.leaves.some((l) => l.key === bob.user.id), {
    timeout: LEAVE_WITHIN_MS + SLACK_MS,
    message,
  });
  const took = a.pres.leaves.find((l) => l.key === bob.user.id).at - started;
  assert.ok(took <= LEAVE_WITHIN_MS + SLACK_MS, `leave took ${took} ms`);
  assert.deepEqual(keysOf(a.pres), [alice.user.id]);
}

/** Connect `user`, join the room with a tracked Presence; resolve {socket, channel, pres, response}. */
async function enter(p, user, challengeId, opts = {}) {
  const socket = await p.connect(server, user.token, opts);
  const channel = socket.channel(`challenges:${challengeId}`, {});
  const pres = trackPresence(channel);
  const response = await join(channel);
  return { socket, channel, pres, response };
}

const keysOf = (pres) => pres.list().map((p) => p.key).sort();

describe("presence in a challenge room", () => {
  test("the joiner receives presence_state listing itself with the contract's meta fields", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const socket = await p.connect(server, alice.token);
    const channel = socket.channel(`challenges:${ch.id}`, {});
    const states = collect(channel, "presence_state");
    const pres = trackPresence(channel);
    await join(channel);
    await waitFor(() => pres.byKey(alice.user.id), { timeout: 2000, message: "the joiner listed in its own presence" });
    assert.ok(states.length >= 1, "a presence_state event");
    const state = states[0];
    assert.deepEqual(Object.keys(state), [alice.user.id], `presence_state keys: ${JSON.stringify(state)}`);
    assert.ok(Array.isArray(state[alice.user.id].metas));
    const metas = pres.byKey(alice.user.id).metas;
    assert.equal(metas.length, 1);
    const m = metas[0];
    assert.equal(m.user_id, alice.user.id);
    assert.equal(m.first_name, "Alice");
    assert.equal(typeof m.color, "string");
    assert.ok(m.color.length > 0, "a color");
    assert.equal(m.typing, false);
    assert.ok(m.online_at !== undefined && m.online_at !== null, "online_at");
    assert.equal(typeof m.phx_ref, "string");
    assert.ok(m.phx_ref.length > 0);
    for (const k of ["user_id", "first_name", "color", "typing", "online_at", "phx_ref"]) assert.ok(k in m, `meta has ${k}`);
  });

  test("others get presence_diff joins with metas; the newcomer sees everyone", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const diffs = collect(a.channel, "presence_diff");
    const b = await enter(p, bob, ch.id);
    await waitFor(() => a.pres.joins.some((j) => j.key === bob.user.id), { timeout: 2000, message: "alice sees bob join" });
    const joinEv = a.pres.joins.find((j) => j.key === bob.user.id);
    assert.equal(joinEv.metas.length, 1);
    assert.equal(joinEv.metas[0].first_name, "Bob");
    assert.equal(joinEv.metas[0].user_id, bob.user.id);
    assert.equal(joinEv.metas[0].typing, false);
    const d = diffs.find((x) => x.joins && x.joins[bob.user.id]);
    assert.ok(d, `a presence_diff with bob in joins: ${JSON.stringify(diffs)}`);
    assert.deepEqual(Object.keys(d.leaves), []);
    await waitFor(() => keysOf(b.pres).length === 2, { timeout: 2000, message: "bob sees two people" });
    assert.deepEqual(keysOf(b.pres), [alice.user.id, bob.user.id].sort());
    assert.deepEqual(keysOf(a.pres), [alice.user.id, bob.user.id].sort());
    assert.deepEqual(a.pres.summary(), b.pres.summary());
  });

  test("typing: response:update sets it, current_participant_typing:remove clears it (phx_ref_prev after an update)", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id);
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 2000, message: "both present" });
    const before = a.pres.byKey(bob.user.id).metas[0];
    assert.deepEqual(await push(b.channel, "response:update", { response: "print('hi')" }), { status: "ok", response: {} });
    const typingMeta = await waitFor(
      () => {
        const m = a.pres.byKey(bob.user.id)?.metas;
        return m && m.length === 1 && m[0].typing === true && m[0];
      },
      { timeout: 2000, message: "bob typing: true in alice's list" },
    );
    assert.equal(typingMeta.phx_ref_prev, before.phx_ref, "phx_ref_prev is the previous phx_ref");
    assert.notEqual(typingMeta.phx_ref, before.phx_ref);
    assert.equal(a.pres.byKey(bob.user.id).metas.length, 1, "an update replaces the meta, it does not add one");
    // bob sees himself typing too
    await waitFor(() => b.pres.byKey(bob.user.id)?.metas[0]?.typing === true, { timeout: 2000, message: "bob sees himself typing" });
    assert.equal(a.pres.byKey(alice.user.id).metas[0].typing, false, "alice is not typing");

    assert.deepEqual((await push(b.channel, "current_participant_typing:remove", {})).status, "ok");
    await waitFor(() => a.pres.byKey(bob.user.id)?.metas[0]?.typing === false, { timeout: 2000, message: "bob typing: false" });
    assert.equal(a.pres.byKey(bob.user.id).metas.length, 1);
    await waitFor(() => JSON.stringify(a.pres.summary()) === JSON.stringify(b.pres.summary()), {
      timeout: 2000,
      message: "both lists equal",
    });
  });

  test("leave produces a leave for the others within 1 s", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id);
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 2000, message: "both present" });
    const started = Date.now();
    b.channel.leave();
    await assertBobLeftWithin1s(a, started, "bob's leave");
  });

  test("an abruptly dropped TCP connection leaves within 1 s", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    // no reconnect during the test, so that only the drop is seen
    const b = await enter(p, bob, ch.id, { reconnectAfterMs: () => 60000 });
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 2000, message: "both present" });
    const started = Date.now();
    rawTcpOf(b.socket).destroy();
    await assertBobLeftWithin1s(a, started, "bob's leave after his TCP connection dropped");
  });

  test("a socket closed without leaving leaves within 1 s", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id);
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 2000, message: "both present" });
    const started = Date.now();
    b.socket.disconnect(); // closes the WebSocket, sends no phx_leave
    await assertBobLeftWithin1s(a, started, "bob's leave after his socket closed");
  });

  test("one user with two sockets: one key, two metas, listed until the last one leaves", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const c1 = await enter(p, carol, ch.id);
    const c2 = await enter(p, carol, ch.id);
    await waitFor(() => a.pres.byKey(carol.user.id)?.metas.length === 2, { timeout: 2000, message: "carol with two metas" });
    assert.deepEqual(keysOf(a.pres), [alice.user.id, carol.user.id].sort());
    const refs = a.pres.byKey(carol.user.id).metas.map((m) => m.phx_ref);
    assert.notEqual(refs[0], refs[1], "each meta has its own phx_ref");
    await waitFor(() => c2.pres.byKey(carol.user.id)?.metas.length === 2, { timeout: 2000, message: "carol's second tab sees both" });
    await waitFor(() => JSON.stringify(c1.pres.summary()) === JSON.stringify(a.pres.summary()), {
      timeout: 2000,
      message: "carol's first tab agrees with alice",
    });

    c1.channel.leave();
    await waitFor(() => a.pres.byKey(carol.user.id)?.metas.length === 1, { timeout: 2000, message: "carol down to one meta" });
    assert.ok(keysOf(a.pres).includes(carol.user.id), "carol still listed while one tab remains");
    const leave = a.pres.leaves.find((l) => l.key === carol.user.id);
    assert.equal(leave.remaining.length, 1);

    c2.channel.leave();
    await waitFor(() => !keysOf(a.pres).includes(carol.user.id), { timeout: 2000, message: "carol gone after the last tab" });
    assert.deepEqual(keysOf(a.pres), [alice.user.id]);
  });

  test("a rejoin after a reconnect shows up again, with a new phx_ref", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id, { reconnectAfterMs: () => 100 });
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 2000, message: "both present" });
    const ref1 = a.pres.byKey(bob.user.id).metas[0].phx_ref;
    rawTcpOf(b.socket).destroy(); // phoenix.js reconnects and rejoins by itself
    await waitFor(() => a.pres.leaves.some((l) => l.key === bob.user.id), { timeout: 2000, message: "bob left" });
    await waitFor(
      () => {
        const m = a.pres.byKey(bob.user.id)?.metas;
        return m && m.length === 1 && m[0].phx_ref !== ref1;
      },
      { timeout: 5000, message: "bob back with a new phx_ref" },
    );
    await waitFor(() => JSON.stringify(a.pres.summary()) === JSON.stringify(b.pres.summary()), {
      timeout: 2000,
      message: "alice and bob agree",
    });
  });
  test("long-poll clients take part in presence like WebSocket ones", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id, { transport: "longpoll" });
    await waitFor(() => keysOf(b.pres).length === 2 && keysOf(a.pres).length === 2, { timeout: 3000, message: "both see both" });
    assert.deepEqual(a.pres.summary(), b.pres.summary());
    assert.deepEqual((await push(b.channel, "response:update", { response: "lp" })).status, "ok");
    await waitFor(() => a.pres.byKey(bob.user.id)?.metas[0]?.typing === true, { timeout: 2000, message: "long-poll typing seen" });
    b.channel.leave();
    await waitFor(() => !keysOf(a.pres).includes(bob.user.id), { timeout: LEAVE_WITHIN_MS + SLACK_MS, message: "long-poll leave" });
  });

  test("a long-poll socket closed without leaving leaves within 1 s", T, async (t) => {
    const p = poolFor(t);
    const ch = await createChallenge(server, alice.token);
    const a = await enter(p, alice, ch.id);
    const b = await enter(p, bob, ch.id, { transport: "longpoll" });
    await waitFor(() => keysOf(a.pres).length === 2, { timeout: 3000, message: "both present" });
    await sleep(300); // bob's next poll is waiting on the server
    const started = Date.now();
    b.socket.disconnect(); // phoenix.js aborts the waiting poll; no phx_leave, no more requests
    await assertBobLeftWithin1s(a, started, "bob's leave after his long-poll socket closed");
  });
});

describe("presence at scale", () => {
  test("50 clients over 5 users joining, leaving and dropping at random converge on one list", { timeout: 60000 }, async (t) => {
    const p = poolFor(t);
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await signIn(server, `User${i}`));
    const ch = await createChallenge(server, users[0].token);
    const topic = `challenges:${ch.id}`;

    // a deterministic pseudo-random sequence, so that a failure can be replayed
    const seed = Number(process.env.PRESENCE_SEED || Date.now() % 100000);
    let state = seed;
    const rand = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    t.diagnostic(`seed ${seed}`);

    const clients = [];
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const user = users[i % users.length];
        const socket = await p.connect(server, user.token, { reconnectAfterMs: () => 50 });
        clients[i] = { i, user, socket, channel: null, pres: null, joined: false, busy: false };
      }),
    );
    const enterRoom = async (c) => {
      c.channel = c.socket.channel(topic, {});
      c.pres = trackPresence(c.channel);
      await join(c.channel, 10000);
      c.joined = true;
    };
    const leaveRoom = (c) =>
      new Promise((resolve) => {
        c.joined = false;
        c.channel.leave(5000).receive("ok", resolve).receive("timeout", resolve);
      });
    const bounce = async (c) => {
      // drop the connection without leaving; phoenix.js reconnects and rejoins by itself
      c.joined = false;
      const before = c.channel.joinPush.ref;
      rawTcpOf(c.socket).destroy();
      await waitFor(() => c.channel.state === "joined" && c.channel.joinPush.ref !== before, {
        timeout: 10000,
        message: `client ${c.i} rejoined after a drop`,
      });
      c.joined = true;
    };

    // everyone joins, in random order
    const order = clients.slice().sort(() => rand() - 0.5);
    await Promise.all(order.map(async (c) => {
      await sleep(Math.floor(rand() * 200));
      await enterRoom(c);
    }));

    // random churn for a while
    const ops = [];
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      const c = clients[Math.floor(rand() * clients.length)];
      if (!c.busy) {
        c.busy = true;
        const r = rand();
        let op;
        if (!c.joined) op = enterRoom(c);
        else if (r < 0.6) op = leaveRoom(c);
        else op = bounce(c);
        ops.push(op.finally(() => (c.busy = false)));
      }
      await sleep(Math.floor(rand() * 30));
    }
    await Promise.all(ops);

    const joined = clients.filter((c) => c.joined);
    assert.ok(joined.length > 0, "some clients remain");
    const expected = {};
    for (const c of joined) expected[c.user.user.id] = (expected[c.user.user.id] || 0) + 1;
    const sortObj = (o) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));

    await waitFor(() => joined.every((c) => sortObj(c.pres.counts()) === sortObj(expected)), {
      timeout: 10000,
      message: `every remaining client (${joined.length}) sees ${sortObj(expected)}`,
    }).catch((e) => {
      const bad = joined.find((c) => sortObj(c.pres.counts()) !== sortObj(expected));
      throw new Error(`${e.message}\nclient ${bad?.i} sees ${bad && sortObj(bad.pres.counts())}, expected ${sortObj(expected)}`);
    });
    const viewsNow = () => {
      const views = new Map();
      for (const c of joined) {
        const v = JSON.stringify(c.pres.summary());
        if (!views.has(v)) views.set(v, []);
        views.get(v).push(c.i);
      }
      return views;
    };
    const converged = await waitFor(() => viewsNow().size === 1, { timeout: 3000, message: "one view" }).catch(() => false);
    if (!converged) {
      const views = viewsNow();
      // what the server itself holds: a fresh observer's presence_state (its own key left out)
      const watcher = await signIn(server, "Observer");
      const observer = await p.connect(server, watcher.token);
      const och = observer.channel(topic, {});
      const opres = trackPresence(och);
      await join(och);
      await waitFor(() => opres.byKey(watcher.user.id), { timeout: 2000, message: "observer's presence_state" });
      const serverView = opres.summary().filter(([k]) => k !== watcher.user.id);
      const detail = [...views.entries()].map(([v, who]) => `clients ${who.join(",")} see ${v}`).join("\n");
      assert.fail(
        `every remaining client must see the same phx_refs; ${views.size} different views:\n${detail}\n` +
          `a fresh client's presence_state: ${JSON.stringify(serverView)}`,
      );
    }
    t.diagnostic(`${joined.length} clients remained; ${ops.length} random operations`);
    await Promise.all(clients.map((c) => disconnect(c.socket)));
  });
});
