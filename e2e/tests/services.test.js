// The suite's Postgres and Redis (scripts/services.sh, started once by `make test`) and the
// fault helpers of lib/cluster.js that the cluster tests use on them: fresh databases, Redis
// paused, stopped and restarted, Postgres stopped (fast and immediate) and started again.
// Skipped without the services (a bare `node --test`).
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  services,
  servicesMissing,
  createDatabase,
  pauseRedis,
  resumeRedis,
  stopRedis,
  startRedis,
  restartRedis,
  stopPostgres,
  startPostgres,
} from "../lib/cluster.js";

const run = promisify(execFile);
const T = { timeout: 60000, skip: servicesMissing() ?? false };
/** How long a frozen Redis is given to answer before it counts as not answering. */
const SILENT_MS = 500;

/** The reply line to PING ("+PONG"), "no answer" after `ms`, or the connection error. */
function redisPing(ms = 2000) {
  const { port, hostname } = new URL(services.redisUrl);
  return new Promise((resolve) => {
    const s = net.connect({ host: hostname, port: Number(port) });
    let got = "";
    const done = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done("no answer"), ms);
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      got += d;
      if (got.includes("\r\n")) done(got.trim());
    });
    s.on("error", (e) => done(e.code || e.message));
  });
}

/** `select <sql>` through psql on `url`: its output, or {error} when Postgres refuses. */
async function sql(url, query) {
  try {
    const { stdout } = await run(process.env.DUET_TEST_PSQL || "psql", ["-X", "-q", "-A", "-t", "-d", url, "-c", query], {
      timeout: 20000,
    });
    return stdout.trim();
  } catch (e) {
    return { error: (e.stderr || e.message).trim() };
  }
}

describe("the suite's Postgres and Redis", () => {
  // Whatever a failed test left behind, the next files need both running.
  after(async () => {
    if (servicesMissing()) return;
    await startRedis();
    await startPostgres();
  });

  test("fresh databases are distinct, empty and durable (fsync, synchronous commit)", T, async () => {
    const a = await createDatabase();
    const b = await createDatabase();
    assert.notEqual(a, b);
    assert.equal(await sql(a, "select current_database()"), new URL(a).pathname.slice(1));
    assert.equal(await sql(b, "select count(*) from information_schema.tables where table_schema = 'public'"), "0");
    assert.equal(await sql(a, "show fsync"), "on");
    assert.equal(await sql(a, "show synchronous_commit"), "on");
    assert.equal(new URL(a).hostname, "127.0.0.1");
  });

  test("Redis paused answers nothing, resumed answers again; stopped refuses, started answers", T, async () => {
    assert.equal(await redisPing(), "+PONG");
    await pauseRedis();
    try {
      assert.equal(await redisPing(SILENT_MS), "no answer");
    } finally {
      await resumeRedis();
    }
    assert.equal(await redisPing(), "+PONG");
    await stopRedis();
    assert.equal(await redisPing(), "ECONNREFUSED");
    await startRedis();
    assert.equal(await redisPing(), "+PONG");
    await startRedis(); // a no-op when it runs
    await restartRedis({ signal: "KILL", downMs: 100 });
    assert.equal(await redisPing(), "+PONG");
  });

  test("Postgres stopped refuses connections, started serves the same data (fast and immediate)", T, async () => {
    const url = await createDatabase();
    assert.equal(await sql(url, "create table kept (v text); insert into kept values ('before'); select v from kept"), "before");
    for (const mode of ["fast", "immediate"]) {
      await stopPostgres({ mode });
      const down = await sql(url, "select 1");
      assert.match(down.error ?? "", /connection|refused|server/i, `${mode}: ${JSON.stringify(down)}`);
      await stopPostgres({ mode }); // a no-op when stopped
      await startPostgres();
      assert.equal(await sql(url, "select v from kept"), "before", `after a ${mode} stop`);
    }
  });
});
