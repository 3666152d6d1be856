// Starts a real `duet` server on a loopback port with its own temp data dir.
// Every e2e test (protocol and browser) launches servers through this file.
// Environment: DUET_BIN overrides the binary; E2E_SERVER_LOG=<file> appends every
// server's output (and how it exited) to that file, for debugging.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const DUET_BIN =
  process.env.DUET_BIN || join(here, "..", "..", "target", "release", "duet");

/**
 * Start a server. Options:
 *  - dataDir: reuse a data dir (to restart on the same database); default a new temp dir
 *  - port: bind this port (to restart on the same address); default 0 (any free port)
 *  - env: extra environment variables (e.g. {DUET_TEST_CHANNELS: "1"})
 * Resolves to {url, wsUrl, port, dataDir, proc, stop(), kill(), output()}.
 */
export async function startServer({ dataDir, port = 0, env = {} } = {}) {
  const ownDir = !dataDir;
  dataDir = dataDir || mkdtempSync(join(tmpdir(), "duet-e2e-"));
  const proc = spawn(DUET_BIN, [], {
    env: {
      ...process.env,
      DUET_ADDR: `127.0.0.1:${port}`,
      DUET_DATA_DIR: dataDir,
      RUST_LOG: process.env.RUST_LOG || "duet=warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stderr.on("data", (d) => (out += d));
  if (process.env.E2E_SERVER_LOG) {
    // debugging aid: append every server's output to this file
    const log = createWriteStream(process.env.E2E_SERVER_LOG, { flags: "a" });
    log.write(`\n=== duet pid ${proc.pid} data ${dataDir} env ${JSON.stringify(env)}\n`);
    proc.stdout.pipe(log, { end: false });
    proc.stderr.pipe(log, { end: false });
    proc.on("exit", (code, signal) => log.end(`=== duet pid ${proc.pid} exited code=${code} signal=${signal}\n`));
  }
  const addr = await new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      // a server that never listened leaves nothing worth keeping in a temp dir we made
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`duet did not start:\n${out}`)), 20000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /duet listening on http:\/\/([\d.]+:\d+)/.exec(out);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`duet exited with ${code} before listening:\n${out}`));
    });
  });
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  const actualPort = Number(addr.split(":")[1]);
  return {
    url: `http://${addr}`,
    wsUrl: `ws://${addr}/socket`,
    port: actualPort,
    dataDir,
    proc,
    output: () => out,
    /** SIGTERM and wait for a clean exit. */
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await exited;
    },
    /** SIGKILL: a real crash. */
    async kill() {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await exited;
    },
    cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Sign in as a guest and return {token, user}. */
/**
 * A server and users signed in on it, for a test file's `before` hook:
 * resolves to {server, <first name in lower case>: user, ...}.
 */
export async function startWithUsers(opts, ...firstNames) {
  const server = await startServer(opts);
  const out = { server };
  for (const name of firstNames) out[name.toLowerCase()] = await signIn(server, name);
  return out;
}

/** Stops a server from `startServer` (if it started) and removes its data. */
export async function stopServer(server) {
  await server?.stop();
  server?.cleanup();
}

export async function signIn(server, firstName = "Sophie") {
  const res = await fetch(`${server.url}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ first_name: firstName }),
  });
  if (res.status !== 201) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Create a challenge as `token` and return it. */
export async function createChallenge(server, token, fields = {}) {
  const res = await fetch(`${server.url}/api/challenges`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ title: "FizzBuzz", prompt: "Print 1..100", language: "python", ...fields }),
  });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  return (await res.json()).challenge;
}
