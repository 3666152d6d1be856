// A memory watchdog for tests that send memory bombs (hardening.md D1): a process of its own
// polls the server's RSS every 10 ms and SIGKILLs it above a limit, so a server that touches
// gigabytes cannot take the shared machine down, even while the test's event loop is busy.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

/** The resident set of process `pid` in KiB, or null once it is gone. */
export function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return null;
  }
}

// Runs in the watchdog process: argv = [pid, limit in KiB]. Prints "peak <KiB>" on each new
// peak, "killed <KiB>" when it kills, and exits once the process is gone.
const SCRIPT = `
const fs = require("fs");
const [pid, limitKb] = process.argv.slice(1).map(Number);
let peak = 0;
function rss() {
  try {
    const m = /VmRSS:\\s+(\\d+)/.exec(fs.readFileSync("/proc/" + pid + "/status", "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return -1;
  }
}
(function tick() {
  const r = rss();
  if (r < 0) process.exit(0);
  if (r > peak + 1024) { peak = r; process.stdout.write("peak " + r + "\\n"); }
  if (r > limitKb) {
    try { process.kill(pid, "SIGKILL"); } catch {}
    process.stdout.write("killed " + r + "\\n");
    process.exit(0);
  }
  setTimeout(tick, 10);
})();
`;

/**
 * Watch `pid`; SIGKILL it once its RSS passes `limitMb`. Returns
 * {peakMb(), killedAtMb (null unless it killed), stop()}.
 */
export function watchMemory(pid, limitMb) {
  const child = spawn(process.execPath, ["-e", SCRIPT, String(pid), String(limitMb * 1024)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const dog = {
    peakKb: rssKb(pid) || 0,
    killedAtMb: null,
    peakMb() {
      return Math.round(Math.max(dog.peakKb, rssKb(pid) || 0) / 1024);
    },
    stop() {
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const [what, kb] = buf.slice(0, nl).split(" ");
      buf = buf.slice(nl + 1);
      dog.peakKb = Math.max(dog.peakKb, Number(kb));
      if (what === "killed") dog.killedAtMb = Math.round(Number(kb) / 1024);
    }
  });
  child.unref();
  child.stdout.unref?.();
  return dog;
}
