// Chaos: writers on both edit paths (two `response:update` writers, each alone in its room, and
// two y-phoenix-channel providers typing in one room) while the server is SIGKILLed and
// restarted on the same data dir and port; then, as root, a disk-full episode on a small tmpfs
// (hardening.md "kill -9 during edits" and D5). The promise under test: an acknowledged edit is
// never lost, whatever happens to the process or the disk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, rmdirSync, statfsSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { startServer, signIn, createChallenge } from "../lib/server.js";
import { SocketPool, waitFor, sleep } from "../lib/phx.js";
import { api } from "../lib/http.js";
import { openProvider, closeProvider } from "../lib/yjs.js";
import { LegacyWriter, ProviderWriter, missingFrom, summary } from "../lib/writers.js";

/** SIGKILLs in the first test. */
const CYCLES = 5;
/** Socket options of the writers: quick reconnects and rejoins, replies awaited 3 s. */
const WRITER_SOCKET = { reconnectAfterMs: () => 100, rejoinAfterMs: () => 100, timeout: 3000 };
/** Size of the tmpfs of the disk-full episode (as redteam/diskfull.py). */
const TMPFS_SIZE = "2m";
/** Space left free by the filler: the writers fill it within a second or two. */
const LEAVE_FREE = 96 << 10;

async function responseOf(srv, token, id) {
  const r = await api(srv, "GET", `/api/challenges/${id}`, { token });
  assert.equal(r.status, 200, `GET /api/challenges/${id}: ${r.status} ${r.text}`);
  return r.body.challenge.response;
}

async function health(srv) {
  try {
    return (await api(srv, "GET", "/healthz", { timeout: 2000 })).status;
  } catch (e) {
    return `unreachable: ${e.message}`;
  }
}

/** Two users, two legacy rooms, one Yjs room and the four writers on their own sockets. */
async function fourWriters(srv, pool, { padding = 0, pauseMs = 40 } = {}) {
  const ann = await signIn(srv, "Ann");
  const bob = await signIn(srv, "Bob");
  const rooms = {
    la: (await createChallenge(srv, ann.token, { title: "legacy A" })).id,
    lb: (await createChallenge(srv, bob.token, { title: "legacy B" })).id,
    y: (await createChallenge(srv, ann.token, { title: "yjs" })).id,
  };
  const sock = (u) => pool.connect(srv, u.token, WRITER_SOCKET);
  const la = await new LegacyWriter(await sock(ann), rooms.la, { name: "La", padding, pauseMs }).join();
  const lb = await new LegacyWriter(await sock(bob), rooms.lb, { name: "Lb", padding, pauseMs }).join();
  const pa = new ProviderWriter(await sock(ann), rooms.y, { name: "Pa", padding, pauseMs, seed: 7 });
  const pb = new ProviderWriter(await sock(bob), rooms.y, { name: "Pb", padding, pauseMs, seed: 11 });
  await Promise.all([pa.synced(), pb.synced()]);
  return { ann, rooms, writers: { la, lb, pa, pb }, all: [la, lb, pa, pb] };
}

/** What each writer had acknowledged at this moment. */
function ackedNow({ la, lb, pa, pb }) {
  return { la: la.acked.slice(), lb: lb.acked.slice(), pa: pa.ackedWords(), pb: pb.ackedWords() };
}

/** Acknowledged edits missing from the texts of the three rooms: {la: [...], lb: [...], y: [...]}. */
function lostIn(texts, acked) {
  return { la: missingFrom(texts.la, acked.la), lb: missingFrom(texts.lb, acked.lb), y: missingFrom(texts.y, [...acked.pa, ...acked.pb]) };
}

/** The texts GET /api/challenges/:id returns for the three rooms. */
async function getTexts(srv, token, rooms) {
  const [la, lb, y] = await Promise.all([rooms.la, rooms.lb, rooms.y].map((id) => responseOf(srv, token, id)));
  return { la, lb, y };
}

/** Acknowledged edits missing from what GET returns. */
async function lostFrom(srv, token, rooms, acked) {
  return lostIn(await getTexts(srv, token, rooms), acked);
}

/**
 * After a restart: the acknowledged edits missing from GET (read before the rooms load), from
 * the document a fresh Yjs client of each room gets, and from GET once the rooms are loaded;
 * and whether the three agree.
 */
async function lostAfterRestart(srv, pool, token, rooms, acked) {
  const before = await getTexts(srv, token, rooms);
  const fresh = {};
  for (const k of ["la", "lb", "y"]) fresh[k] = await freshProviderText(srv, pool, token, rooms[k]);
  const loaded = await getTexts(srv, token, rooms);
  const lost = { get: lostIn(before, acked), yjs: lostIn(fresh, acked), loaded: lostIn(loaded, acked) };
  const disagree = ["la", "lb", "y"].filter((k) => before[k] !== fresh[k] || fresh[k] !== loaded[k]);
  return { lost, disagree, texts: fresh };
}

const noneLost = ({ lost }) => Object.values(lost).every(nothingLost);

/** `{get: {la: 12 missing, e.g. <La:65>, …}, …}` for an assertion message. */
function describeLost(lost) {
  const one = (l) => Object.entries(l).map(([k, v]) => `${k}: ${v.length} missing${v.length ? `, e.g. ${v.slice(0, 3).map((w) => w.slice(0, 12))}` : ""}`);
  return Object.entries(lost).map(([where, l]) => `${where} {${one(l).join("; ")}}`).join(", ");
}

/** The outcomes of a writer's replies between two instants, as runs: "ok×3 not saved×5 …". */
function runs(w, from, to) {
  const out = [];
  for (const [at, what] of w.outcomes.times) {
    if (at < from || at > to) continue;
    const last = out.at(-1);
    if (last && last[0] === what) last[1]++;
    else out.push([what, 1]);
  }
  return `${w.name}: ${out.map(([what, n]) => `${what}×${n}`).join(" ")}`;
}

const nothingLost = (lost) => Object.values(lost).every((l) => l.length === 0);

/** Both providers and the server agree on the Yjs room's text, holding every word typed. */
async function providersConverge(srv, token, rooms, { pa, pb }, timeout = 8000) {
  let last = "";
  await waitFor(
    async () => {
      last = await responseOf(srv, token, rooms.y);
      const a = pa.text.toString();
      return a === pb.text.toString() && a === last && missingFrom(last, [...pa.allWords(), ...pb.allWords()]).length === 0;
    },
    { timeout, interval: 100, message: "the providers and the server agree on a text holding every word typed" },
  ).catch((e) => {
    const missing = missingFrom(last, [...pa.allWords(), ...pb.allWords()]);
    throw new Error(`${e.message}; ${missing.length} word(s) missing from the server, e.g. ${missing.slice(0, 5)}`);
  });
  return last;
}

/** A fresh provider's text of room `id`. */
async function freshProviderText(srv, pool, token, id) {
  const fresh = await openProvider(await pool.connect(srv, token), id);
  try {
    return fresh.text.toString();
  } finally {
    closeProvider(fresh);
  }
}

test(`${CYCLES} SIGKILLs and restarts during edits on both paths: every acknowledged edit survives`, { timeout: 90000 }, async (t) => {
  let srv = await startServer();
  const { dataDir, port } = srv;
  const pool = new SocketPool();
  let writers = [];
  t.after(async () => {
    writers.forEach((w) => w.close());
    await pool.closeAll();
    await srv.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const setup = await fourWriters(srv, pool);
  writers = setup.all;
  const { ann, rooms } = setup;
  writers.forEach((w) => w.start());

  let seed = 20261206;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const restarts = [];
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    await sleep(700 + Math.floor(rand() * 1300));
    // kill while edits of both paths are in flight (if that comes within a second)
    const { la, lb, pa, pb } = setup.writers;
    const inFlight = () => la.inflight + lb.inflight > 0 && pa.inflight + pb.inflight > 0;
    await waitFor(inFlight, { timeout: 1000, interval: 1 }).catch(() => {});
    await srv.kill();
    const acked = ackedNow(setup.writers);
    const began = Date.now();
    srv = await startServer({ dataDir, port });
    restarts.push(Date.now() - began);
    const lost = await lostFrom(srv, ann.token, rooms, acked);
    t.diagnostic(`kill ${cycle}: restart ${restarts.at(-1)} ms; ${summary(writers)}`);
    assert.ok(nothingLost(lost), `after kill ${cycle}, acknowledged edits missing from GET: ${describeLost({ get: lost })}`);
    // every writer is back at work before the next kill
    const okBefore = writers.map((w) => w.outcomes.ok);
    await waitFor(() => writers.every((w, i) => w.outcomes.ok > okBefore[i]), {
      timeout: 8000,
      message: `every writer acknowledged again after restart ${cycle} (${summary(writers)})`,
    });
  }
  await sleep(500);
  await Promise.all(writers.map((w) => w.stop()));
  t.diagnostic(`restarts (ms): ${restarts.join(", ")}; ${summary(writers)}`);

  const acked = ackedNow(setup.writers);
  const after = await lostAfterRestart(srv, pool, ann.token, rooms, acked);
  assert.ok(noneLost(after), `after the last restart, acknowledged edits missing: ${describeLost(after.lost)}`);
  assert.deepEqual(after.disagree, [], "GET and a fresh Yjs client give the same text");
  for (const w of writers) assert.ok(w.outcomes.ok >= 20, `${w.name} had ${w.outcomes.ok} edits acknowledged`);
  for (const [name, w] of Object.entries(setup.writers)) {
    for (const reason of Object.keys(w.outcomes.errors)) {
      // edits pushed before a rejoin's sync finished may depend on what the crash took
      assert.ok(reason === "out of sync" && name.startsWith("p"), `${w.name}: unexpected error replies ${JSON.stringify(w.outcomes.errors)}`);
    }
  }
  // what was typed but not acknowledged came back too, when the providers synced again
  const text = await providersConverge(srv, ann.token, rooms, setup.writers);
  // and a restart after a clean stop changes nothing
  await srv.stop();
  srv = await startServer({ dataDir, port });
  assert.equal(await responseOf(srv, ann.token, rooms.y), text);
});

/** Mounts a tmpfs of `size` on a new temp dir; returns its path, or why it cannot. */
function mountTmpfs(size) {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return { why: "not running as root (mount needs it)" };
  const dir = mkdtempSync(joinPath(tmpdir(), "duet-diskfull-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
    return { dir };
  } catch (e) {
    rmdirSync(dir);
    return { why: `mount -t tmpfs failed: ${String(e.stderr || e.message).trim()}` };
  }
}

function unmount(dir) {
  for (const args of [[dir], ["-l", dir]]) {
    try {
      execFileSync("umount", args, { stdio: "pipe" });
      break;
    } catch {
      /* busy: lazily next */
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* still mounted: left for the OS */
  }
}

test("disk full on a 2 MiB tmpfs, space freed, SIGKILL: only errors while full, no acknowledged edit lost, the refused Yjs edits come back, /healthz 200 once freed", { timeout: 90000 }, async (t) => {
  const mount = mountTmpfs(TMPFS_SIZE);
  if (!mount.dir) {
    t.skip(`disk-full episode skipped: ${mount.why}`);
    return;
  }
  const mnt = mount.dir;
  const filler = joinPath(mnt, "filler");
  let srv;
  const pool = new SocketPool();
  let writers = [];
  // if the test process ends before the hooks run (a signal), the mount goes anyway
  const emergency = () => {
    srv?.proc.kill("SIGKILL");
    unmount(mnt);
  };
  const onSignal = () => {
    emergency();
    process.exit(130);
  };
  process.once("exit", emergency);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  t.after(async () => {
    writers.forEach((w) => w.close());
    await pool.closeAll();
    await srv?.kill();
    unmount(mnt);
    process.off("exit", emergency);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  });
  srv = await startServer({ dataDir: mnt });
  // ~100-byte edits, at most ~40 a second each: the freed space lasts the rest of the episode
  const setup = await fourWriters(srv, pool, { padding: 100, pauseMs: 100 });
  writers = setup.all;
  const { ann, rooms } = setup;
  writers.forEach((w) => w.start());
  await waitFor(() => writers.every((w) => w.outcomes.ok >= 3), { timeout: 5000, message: "the writers are at work" });

  // fill the disk but a little, and let the writers run into the wall
  const { bavail, bsize } = statfsSync(mnt);
  try {
    writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - LEAVE_FREE)));
  } catch (e) {
    if (e.code !== "ENOSPC") throw e; // the writers got there first: the filler holds what it could
  }
  const fullAt = Date.now();
  const errorsAt = writers.map((w) => w.outcomes.errorCount());
  const healthWhileFull = [];
  const failingEverywhere = () => writers.every((w, i) => w.outcomes.errorCount() >= errorsAt[i] + 5);
  while (!failingEverywhere() && Date.now() - fullAt < 15000) await sleep(50);
  t.diagnostic(`disk full after ${Date.now() - fullAt} ms: ${summary(writers)}`);
  const fullReached = failingEverywhere();
  for (let i = 0; i < 10; i++) {
    healthWhileFull.push(await health(srv));
    await sleep(100);
  }
  const ackedWhileFull = writers.map((w) => w.outcomes.ok);

  // space comes back: the writers go on, and the Yjs edits refused meanwhile come back
  unlinkSync(filler);
  const freedAt = Date.now();
  const healthAfter = [];
  let healthy = false;
  while (Date.now() - freedAt < 6000) {
    const h = await health(srv);
    healthAfter.push(h);
    if (h === 200) {
      healthy = true;
      break;
    }
    await sleep(100);
  }
  const healedIn = Date.now() - freedAt;
  await waitFor(() => writers.every((w, i) => w.outcomes.ok >= ackedWhileFull[i] + 10), {
    timeout: 10000,
    message: `every writer acknowledged again once space was freed (${summary(writers)})`,
  }).catch((e) => t.diagnostic(e.message));
  await Promise.all(writers.map((w) => w.stop()));
  const healthEnd = await health(srv);
  t.diagnostic(`space freed; /healthz 200 after ${healedIn} ms; ${summary(writers)}`);
  for (const w of writers) t.diagnostic(`while full: ${runs(w, fullAt, freedAt)}`);
  for (const w of writers) t.diagnostic(`once freed: ${runs(w, freedAt, Date.now())}`);
  let converged = null;
  try {
    await providersConverge(srv, ann.token, rooms, setup.writers, 6000);
  } catch (e) {
    converged = e.message;
  }

  await srv.kill();
  const acked = ackedNow(setup.writers);
  srv = await startServer({ dataDir: mnt });
  const after = await lostAfterRestart(srv, pool, ann.token, rooms, acked);
  t.diagnostic(`after SIGKILL and restart: ${describeLost(after.lost)}; rooms where they disagree: ${after.disagree}`);

  assert.ok(fullReached, `every writer got errors once the disk was full (${summary(writers)})`);
  assert.ok(noneLost(after), `acknowledged edits lost after the disk was full, then freed, then SIGKILL: ${describeLost(after.lost)}`);
  assert.deepEqual(after.disagree, [], "GET and a fresh Yjs client give the same text");
  assert.equal(converged, null, "the Yjs edits refused while the disk was full came back once it was freed");
  assert.ok(healthy, `/healthz after space was freed: ${healthAfter.join(", ")}`);
  assert.equal(healthEnd, 200, "/healthz once the writers were acknowledged again");
  const { la, lb, pa, pb } = setup.writers;
  for (const w of [la, lb]) {
    assert.deepEqual(Object.keys(w.outcomes.errors), ["not saved"], `${w.name}'s error replies: ${JSON.stringify(w.outcomes.errors)}`);
  }
  // a provider's edit that builds on one of its own the server could not save is refused as
  // "out of sync" (missing dependencies) until the room's sync step 1 takes them back
  for (const w of [pa, pb]) {
    const reasons = Object.keys(w.outcomes.errors).filter((r) => r !== "not saved" && r !== "out of sync");
    assert.deepEqual(reasons, [], `${w.name}'s error replies: ${JSON.stringify(w.outcomes.errors)}`);
  }
  for (const w of writers) assert.equal(w.outcomes.timeouts, 0, `${w.name}: no reply for ${w.outcomes.timeouts} edit(s)`);
  assert.ok(healthWhileFull.every((h) => h === 503), `/healthz while every edit got "not saved": ${healthWhileFull.join(", ")}`);
});
