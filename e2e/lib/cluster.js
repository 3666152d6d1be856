// Many nodes on one machine (CONTRACT §5): N real `duet` processes sharing a fresh database on
// the suite's Postgres and the suite's Redis, plus the faults the cluster tests inject: a node
// stopped (SIGTERM) or killed (SIGKILL) and restarted on its port, Redis paused (SIGSTOP) or
// restarted, Postgres stopped and started.
//
// Postgres and Redis are started once per `make test` by scripts/services.sh, which exports
// DUET_TEST_POSTGRES_URL, DUET_TEST_REDIS_URL and DUET_TEST_SERVICES_DIR (the fault helpers go
// through `scripts/services.sh <subcommand>` on that dir). Without them (a bare `node --test`),
// `clusterSupport()` says why the cluster tests are skipped; run them under
// `scripts/services.sh run -- node --test ...` instead.
//
// The services are shared by every test of the run, and tests run one file at a time
// (--test-concurrency=1): a test that stops Redis or Postgres must start them again before it
// ends (`t.after(startPostgres)` is safe: starting a running server is a no-op here).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { startServer } from "./server.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
/** scripts/services.sh of this checkout (or the one that started the services). */
export const SERVICES_SCRIPT =
  process.env.DUET_TEST_SERVICES || join(here, "..", "..", "scripts", "services.sh");

/** How long a node may take to see all the others in `/healthz` (heartbeats every 500 ms). */
const NODES_SEEN_MS = 10000;
/** What today's binary says when given a postgres:// DATABASE_URL (no cluster support yet). */
const NO_POSTGRES = /must be an SQLite URL/;

/** The suite's services, from the environment (undefined when not started). */
export const services = {
  postgresUrl: process.env.DUET_TEST_POSTGRES_URL || undefined,
  redisUrl: process.env.DUET_TEST_REDIS_URL || undefined,
  dir: process.env.DUET_TEST_SERVICES_DIR || undefined,
};

/** Why cluster tests cannot run here (a string), or null when the services are up. */
export function servicesMissing() {
  if (!services.postgresUrl || !services.redisUrl || !services.dir) {
    return "DUET_TEST_POSTGRES_URL / DUET_TEST_REDIS_URL are not set: run under `make test` or `scripts/services.sh run -- <command>`";
  }
  return null;
}

/** Runs `scripts/services.sh <args...>` on the suite's services; resolves to its stdout. */
async function servicesCmd(...args) {
  const missing = servicesMissing();
  if (missing) throw new Error(missing);
  try {
    const { stdout } = await run(SERVICES_SCRIPT, args, { env: process.env, timeout: 60000 });
    return stdout.trim();
  } catch (e) {
    throw new Error(`scripts/services.sh ${args.join(" ")} failed: ${e.stderr || e.message}`);
  }
}

/** A fresh, empty database on the suite's Postgres; resolves to its URL. */
export async function createDatabase(name) {
  return servicesCmd("createdb", ...(name ? [name] : []));
}

let supportProbe;
/**
 * Whether this machine and binary can run a cluster: resolves to {skip: false} or
 * {skip: "<reason>"} for node:test's `skip` option. It starts one node on a fresh database once
 * per process. A binary that refuses postgres:// (no cluster support yet) is a skip, unless
 * DUET_TEST_CLUSTER=require; any other start failure rejects (a real failure).
 */
export function clusterSupport() {
  supportProbe ??= (async () => {
    const missing = servicesMissing();
    if (missing) return { skip: missing };
    const databaseUrl = await createDatabase();
    try {
      const node = await startServer({
        env: { DATABASE_URL: databaseUrl, DUET_REDIS_URL: services.redisUrl, DUET_SECRET: secretHex(), DUET_NODE_NAME: "probe" },
      });
      await node.stop();
      node.cleanup();
      return { skip: false };
    } catch (e) {
      if (NO_POSTGRES.test(e.message) && process.env.DUET_TEST_CLUSTER !== "require") {
        return { skip: "target/release/duet refuses DATABASE_URL=postgres:// (the cluster server has not landed yet)" };
      }
      throw e;
    }
  })();
  return supportProbe;
}

const secretHex = () => randomBytes(32).toString("hex");

/**
 * Start `nodes` duet processes on any free loopback ports, all with the same DATABASE_URL (a
 * fresh database unless `databaseUrl` is given), DUET_REDIS_URL (the suite's unless `redisUrl`)
 * and DUET_SECRET, each with its own DUET_ADDR, DUET_NODE_NAME (`node1`, `node2`, ...) and data
 * dir. `env` is added to every node's environment. Resolves to a `Cluster` once every node
 * listens (not necessarily sees the others: `waitForNodes`).
 */
export async function startCluster({ nodes = 3, env = {}, databaseUrl, redisUrl, secret } = {}) {
  const missing = servicesMissing();
  if (missing) throw new Error(missing);
  const c = new Cluster({
    databaseUrl: databaseUrl || (await createDatabase()),
    redisUrl: redisUrl || services.redisUrl,
    secret: secret || secretHex(),
    env,
  });
  try {
    for (let i = 0; i < nodes; i++) await c.addNode();
  } catch (e) {
    await c.stop();
    throw e;
  }
  return c;
}

export class Cluster {
  constructor({ databaseUrl, redisUrl, secret, env }) {
    this.databaseUrl = databaseUrl;
    this.redisUrl = redisUrl;
    this.secret = secret;
    this.env = env;
    /** Each node: the `startServer` object ({url, wsUrl, port, proc, ...}) plus {index, name}. */
    this.nodes = [];
    /** Data dirs, kept across restarts, removed by `stop()`. */
    this.dirs = [];
  }

  nodeEnv(i) {
    return {
      DATABASE_URL: this.databaseUrl,
      DUET_REDIS_URL: this.redisUrl,
      DUET_SECRET: this.secret,
      DUET_NODE_NAME: `node${i + 1}`,
      ...this.env,
    };
  }

  async launch(i, port) {
    const server = await startServer({ port, dataDir: this.dirs[i], env: this.nodeEnv(i) });
    const node = Object.assign(server, { index: i, name: `node${i + 1}`, running: true });
    node.proc.on("exit", () => (node.running = false));
    this.nodes[i] = node;
    return node;
  }

  /** Start one more node (on any free port); resolves to it. */
  async addNode() {
    const i = this.nodes.length;
    this.dirs[i] = mkdtempSync(join(tmpdir(), `duet-node${i + 1}-`));
    return this.launch(i, 0);
  }

  /** Node `i` (0-based). */
  node(i) {
    return this.nodes[i];
  }

  /** The nodes whose process is running. */
  live() {
    return this.nodes.filter((n) => n.running);
  }

  /** Stop node `i`: SIGTERM (a clean stop, it drains) or SIGKILL (a crash); resolves on exit. */
  async stopNode(i, { signal = "SIGTERM" } = {}) {
    const n = this.nodes[i];
    if (signal === "SIGKILL") await n.kill();
    else await n.stop();
  }

  /** Start node `i` again on its port and data dir (after `stopNode`); resolves to the new node. */
  async startNode(i) {
    const old = this.nodes[i];
    if (old.running) throw new Error(`${old.name} is still running`);
    return this.launch(i, old.port);
  }

  /** `stopNode` then `startNode`. */
  async restartNode(i, { signal = "SIGTERM" } = {}) {
    await this.stopNode(i, { signal });
    return this.startNode(i);
  }

  /**
   * Resolve once every running node's `/healthz` answers 200 with `"nodes": n` (default: the
   * running nodes); reject after `timeout` ms with what each said last.
   */
  async waitForNodes(n = this.live().length, { timeout = NODES_SEEN_MS } = {}) {
    const deadline = Date.now() + timeout;
    let last = [];
    for (;;) {
      last = await Promise.all(this.live().map((node) => health(node)));
      if (last.every((h) => h.status === 200 && h.body?.nodes === n)) return last;
      if (Date.now() > deadline) {
        throw new Error(`not every node saw ${n} nodes within ${timeout} ms: ${JSON.stringify(last)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stop every node (SIGTERM) and remove their data dirs; the database stays until the run ends. */
  async stop() {
    await Promise.all(this.live().map((n) => n.stop()));
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** GET /healthz of a node: {status, body} ({status: 0, error} when it does not answer). */
export async function health(node, ms = 2000) {
  try {
    const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(ms) });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, body };
  } catch (e) {
    return { status: 0, error: e.message };
  }
}

// --- Redis faults (the suite's Redis: every cluster of the run sees them) ---

/** Freeze Redis (SIGSTOP): connections stay open but nothing answers. Undo with `resumeRedis`. */
export const pauseRedis = () => servicesCmd("redis-pause");
/** Thaw Redis (SIGCONT) after `pauseRedis`. */
export const resumeRedis = () => servicesCmd("redis-resume");
/** Stop Redis for real: "TERM" (clean) or "KILL"; every connection drops. */
export const stopRedis = ({ signal = "TERM" } = {}) => servicesCmd("redis-stop", signal);
/** Start Redis again on the same port (empty: it keeps nothing); a no-op when it runs. */
export const startRedis = () => servicesCmd("redis-start");
/** Stop Redis, wait `downMs`, start it again. */
export async function restartRedis({ signal = "TERM", downMs = 0 } = {}) {
  await stopRedis({ signal });
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
  await startRedis();
}

// --- Postgres faults ---

/**
 * Stop Postgres with pg_ctl: mode "fast" (disconnects everyone, then a clean shutdown),
 * "immediate" (like a crash: recovery on the next start) or "smart" (waits for clients).
 */
export const stopPostgres = ({ mode = "fast" } = {}) => servicesCmd("pg-stop", mode);
/** Start Postgres again (pg_ctl start; waits until it accepts connections). */
export const startPostgres = () => servicesCmd("pg-start");
