// The run protocol on `challenges:<id>` (CONTRACT §8, README "Run"), with
// the real phoenix client: one run per room, only its runner may report,
// the server's own 64 KiB cut, runners that leave or go quiet, late joiners.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWithUsers, stopServer, createChallenge } from "../lib/server.js";
import { poolFor, join, push, collect, waitFor, sleep } from "../lib/phx.js";

const T = { timeout: 30000 };
const CAP = 64 * 1024;

let server;
let alice, bob, carol;

before(async () => {
  // A 1 s wall limit keeps the "runner goes quiet" test short.
  ({ server, alice, bob, carol } = await startWithUsers({ env: { DUET_RUN_TIMEOUT_SECS: "1" } }, "Alice", "Bob", "Carol"));
});

after(() => stopServer(server));

/** `user` in room `id` with every run event recorded (run:state included, from the join on). */
async function enter(p, user, id) {
  const socket = await p.connect(server, user.token);
  const channel = socket.channel(`challenges:${id}`, {});
  const seen = {};
  for (const e of ["run:state", "run:started", "run:status", "run:output", "run:exited"]) seen[e] = collect(channel, e);
  await join(channel);
  // run:state follows the join reply.
  await waitFor(() => seen["run:state"].length === 1, { message: "run:state after the join" });
  return { socket, channel, seen };
}

async function room(t, language = "python") {
  const p = poolFor(t);
  const ch = await createChallenge(server, alice.token, { language });
  const a = await enter(p, alice, ch.id);
  const b = await enter(p, bob, ch.id);
  return { p, ch, a, b };
}

async function start(member, code = "print(1)", stdin = "") {
  const r = await push(member.channel, "run:start", { code, stdin });
  assert.equal(r.status, "ok", JSON.stringify(r.response));
  return r.response.run_id;
}

test("one run per room: the start is announced to all with its limits; a second start says who runs", T, async (t) => {
  const { a, b } = await room(t);
  assert.deepEqual(a.seen["run:state"], [{ run: null }]);
  const r = await push(a.channel, "run:start", { code: "print(1)", stdin: "" });
  assert.equal(r.status, "ok");
  assert.deepEqual(r.response.limits, { wall_ms: 1000, output_bytes: CAP, memory_mb: 256 });
  const id = r.response.run_id;
  for (const m of [a, b]) {
    const started = await waitFor(() => m.seen["run:started"][0], { message: "run:started" });
    assert.equal(started.run_id, id);
    assert.equal(started.first_name, "Alice");
    assert.equal(started.user_id, alice.user.id);
    assert.equal(started.language, "python");
    assert.match(started.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  const second = await push(b.channel, "run:start", { code: "print(2)" });
  assert.equal(second.status, "error");
  assert.deepEqual(second.response, { reason: "already running", run_id: id, user_id: alice.user.id, first_name: "Alice" });

  const exit = await push(a.channel, "run:exit", { run_id: id, exit: 0, wall_ms: 7, timed_out: false, truncated: false });
  assert.equal(exit.status, "ok");
  for (const m of [a, b]) {
    const exited = await waitFor(() => m.seen["run:exited"][0], { message: "run:exited" });
    // The wall time is the runner's, but never more than the time since the start.
    assert.ok(exited.wall_ms <= 7, `wall_ms ${exited.wall_ms}`);
    assert.deepEqual({ ...exited, wall_ms: 7 }, { run_id: id, exit: 0, wall_ms: 7, timed_out: false, out_of_memory: false, truncated: false, reason: null });
  }
  // The room is free again.
  assert.equal((await push(b.channel, "run:start", { code: "print(2)" })).status, "ok");
});

test("only the runner may send status, output and exit; output goes to the others", T, async (t) => {
  const { a, b } = await room(t);
  const id = await start(a);
  for (const [event, payload] of [
    ["run:status", { run_id: id, phase: "running" }],
    ["run:output", { run_id: id, stream: "stdout", data: "fake\n" }],
    ["run:exit", { run_id: id, exit: 0 }],
  ]) {
    const r = await push(b.channel, event, payload);
    assert.deepEqual(r, { status: "error", response: { reason: "not the runner" } }, event);
  }
  assert.deepEqual((await push(a.channel, "run:output", { run_id: "nope", stream: "stdout", data: "x" })).response, { reason: "no such run" });
  assert.deepEqual((await push(a.channel, "run:output", { run_id: id, stream: "stdin", data: "x" })).response, { reason: "invalid stream" });

  assert.equal((await push(a.channel, "run:status", { run_id: id, phase: "running" })).status, "ok");
  assert.deepEqual((await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "real\n" })).response, { truncated: false });
  assert.equal((await push(a.channel, "run:output", { run_id: id, stream: "stderr", data: "warn\n" })).status, "ok");
  await waitFor(() => b.seen["run:output"].length === 2, { message: "Bob gets the output" });
  assert.deepEqual(b.seen["run:status"], [{ run_id: id, phase: "running" }]);
  assert.deepEqual(b.seen["run:output"], [
    { run_id: id, chunks: [{ stream: "stdout", data: "real\n" }] },
    { run_id: id, chunks: [{ stream: "stderr", data: "warn\n" }] },
  ]);
  // A batch: any number of pieces of both streams, relayed as one message.
  const batch = [{ stream: "stdout", data: "a" }, { stream: "stderr", data: "b" }, { stream: "stdout", data: "c" }];
  assert.equal((await push(a.channel, "run:output", { run_id: id, chunks: batch })).status, "ok");
  await waitFor(() => b.seen["run:output"].length === 3, { message: "Bob gets the batch" });
  assert.deepEqual(b.seen["run:output"][2], { run_id: id, chunks: batch });
  await sleep(100);
  assert.deepEqual(a.seen["run:output"], [], "the runner has its output already");
  assert.deepEqual(a.seen["run:status"], []);
  assert.equal((await push(a.channel, "run:exit", { run_id: id, exit: 1 })).status, "ok");
  assert.deepEqual((await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "late" })).response, { reason: "no such run" });
});

test("the server cuts the output at 64 KiB whatever the runner sends", T, async (t) => {
  const { a, b } = await room(t);
  const id = await start(a);
  // A runner that ignores the limit: 100 000 bytes, then more.
  const piece = "x".repeat(10_000);
  for (let i = 0; i < 10; i++) await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: piece });
  const r = await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "more" });
  assert.deepEqual(r.response, { truncated: true });
  await push(a.channel, "run:exit", { run_id: id, exit: 0, truncated: false });
  const exited = await waitFor(() => b.seen["run:exited"][0], { message: "run:exited" });
  assert.equal(exited.truncated, true, "the server says it cut");
  const got = b.seen["run:output"].flatMap((o) => o.chunks.map((c) => c.data)).join("");
  assert.equal(got.length, CAP);
  assert.equal(b.seen["run:output"].at(-1).truncated, true);
  assert.equal(b.seen["run:output"].filter((o) => o.truncated).length, 1);
});

test("a runner that leaves mid-run: the run ends for the others, who may run next", T, async (t) => {
  const { a, b } = await room(t);
  const id = await start(a);
  await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "partial\n" });
  a.socket.disconnect();
  const exited = await waitFor(() => b.seen["run:exited"][0], { message: "run:exited after the runner left" });
  assert.equal(exited.run_id, id);
  assert.equal(exited.exit, null);
  assert.equal(exited.reason, "the runner left");
  assert.equal((await push(b.channel, "run:start", { code: "print(2)" })).status, "ok");
});

test("a runner that goes quiet is ended at the wall limit plus a grace", T, async (t) => {
  const { a, b } = await room(t);
  const id = await start(a);
  await push(a.channel, "run:status", { run_id: id, phase: "running" });
  const quiet = Date.now();
  const exited = await waitFor(() => b.seen["run:exited"][0], { timeout: 10000, message: "run:exited for a quiet runner" });
  const after = Date.now() - quiet;
  assert.equal(exited.reason, "the runner stopped answering");
  assert.equal(exited.exit, null);
  assert.ok(after >= 900 && after < 6000, `ended ${after} ms after it started running (1 s limit + 3 s grace)`);
  assert.deepEqual((await push(a.channel, "run:exit", { run_id: id, exit: 0 })).response, { reason: "no such run" });
});

test("a member who joins during a run gets its output so far, then the rest; after it, how it ended", T, async (t) => {
  const { p, ch, a } = await room(t);
  const id = await start(a);
  await push(a.channel, "run:status", { run_id: id, phase: "running" });
  await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "one\n" });
  await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "two\n" });
  await push(a.channel, "run:output", { run_id: id, stream: "stderr", data: "err\n" });
  const c = await enter(p, carol, ch.id);
  const state = c.seen["run:state"][0].run;
  assert.equal(state.run_id, id);
  assert.equal(state.first_name, "Alice");
  assert.equal(state.phase, "running");
  assert.deepEqual(state.output, [
    { stream: "stdout", data: "one\ntwo\n" },
    { stream: "stderr", data: "err\n" },
  ]);
  assert.equal(state.exit, null);
  await push(a.channel, "run:output", { run_id: id, stream: "stdout", data: "three\n" });
  await push(a.channel, "run:exit", { run_id: id, exit: 0, wall_ms: 3 });
  await waitFor(() => c.seen["run:exited"].length === 1, { message: "Carol gets the exit" });
  assert.deepEqual(c.seen["run:output"], [{ run_id: id, chunks: [{ stream: "stdout", data: "three\n" }] }]);

  const d = await enter(p, bob, ch.id); // a second tab of Bob's, after the run
  const last = d.seen["run:state"][0].run;
  assert.equal(last.run_id, id);
  assert.equal(last.phase, "exited");
  assert.equal(last.exit.exit, 0);
  assert.deepEqual(last.output.map((o) => o.data), ["one\ntwo\n", "err\n", "three\n"]);
});

test("runs are refused for languages without a runner, and for bad payloads", T, async (t) => {
  const { a } = await room(t, "rust");
  assert.deepEqual((await push(a.channel, "run:start", { code: "fn main() {}" })).response, { reason: "language not supported" });
  const { a: py } = await room(t, "python");
  assert.deepEqual((await push(py.channel, "run:start", {})).response, { reason: "invalid code" });
  assert.deepEqual((await push(py.channel, "run:start", { code: "", stdin: "x".repeat(100_001) })).response, { reason: "stdin too long" });
});

test("the runner page carries its sandbox policy; its files carry CORS, are stored gzipped, and inflate for clients without gzip", T, async () => {
  const page = await fetch(`${server.url}/runner`);
  assert.equal(page.status, 200);
  const csp = page.headers.get("content-security-policy");
  for (const directive of ["sandbox allow-scripts", "default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src data:", "connect-src 'self'", "frame-ancestors 'self'"]) {
    assert.ok(csp.split(/;\s*/).includes(directive), `${directive} in ${csp}`);
  }
  const html = await page.text();
  const frameJs = /src="(\/assets\/runner\/frame-[A-Z0-9]+\.js)"/.exec(html)[1];
  const frame = await fetch(server.url + frameJs);
  assert.equal(frame.headers.get("access-control-allow-origin"), "*");
  assert.equal(frame.headers.get("cache-control"), "public, max-age=31536000, immutable");
  const pyodide = /\/assets\/runner\/pyodide-[\d.]+\//.exec(await frame.text())[0];

  const wasmUrl = `${server.url}${pyodide}pyodide.asm.wasm`;
  const gz = await fetch(wasmUrl, { headers: { "accept-encoding": "gzip" } });
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  assert.equal(gz.headers.get("content-type"), "application/wasm");
  assert.equal(gz.headers.get("access-control-allow-origin"), "*");
  assert.equal(gz.headers.get("cache-control"), "public, max-age=31536000, immutable");
  const inflated = new Uint8Array(await gz.arrayBuffer()); // fetch inflates it
  const plain = await fetch(wasmUrl, { headers: { "accept-encoding": "identity" } });
  assert.equal(plain.headers.get("content-encoding"), null);
  const raw = new Uint8Array(await plain.arrayBuffer());
  assert.deepEqual([...raw.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d], "wasm magic");
  assert.equal(raw.length, inflated.length);
  assert.ok(raw.length > 1_000_000);

  // The app's own files are not for other origins.
  const index = await (await fetch(`${server.url}/`)).text();
  const app = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(index)[1];
  assert.equal((await fetch(server.url + app)).headers.get("access-control-allow-origin"), null);
});
