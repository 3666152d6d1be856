// Measures the Playback view's time to interactive for a one-hour session
// of 20 000 edits (lib/session.js, imported through POST
// /api/challenges/import): from the navigation to the room until the view
// is ready to play (its tracks drawn, its slider and Play enabled, at the
// start), with the steps in between; then End at once (the whole log
// applied), the background pass, and the seeks after it. Five runs, each in
// a fresh browser profile (nothing cached).
// Not a test: `node e2e/browser/playback-timing.mjs` (needs
// target/release/duet and Chromium). The README's numbers come from it.
import { startServer, signIn } from "../lib/server.js";
import { api } from "../lib/http.js";
import { generateSession } from "../lib/session.js";
import { launchBrowser, newPerson } from "./helpers.js";

const RUNS = Number(process.env.RUNS || 5);

const server = await startServer();
const browser = await launchBrowser();
try {
  const owner = await signIn(server, "Olivia");
  const sophie = await signIn(server, "Sophie");
  const t0 = Date.now();
  const { file } = generateSession({ people: [{ id: sophie.user.id, first_name: "Sophie" }, { id: owner.user.id, first_name: "Olivia" }] });
  const body = JSON.stringify(file);
  console.log(`session: ${file.updates.length} updates over ${(Date.parse(file.challenge.ended_at) - Date.parse(file.challenge.created_at)) / 60000} min, ${file.answer.length} characters at the end, export ${(body.length / 1e6).toFixed(1)} MB (generated in ${Date.now() - t0} ms)`);
  const t1 = Date.now();
  const imported = await api(server, "POST", "/api/challenges/import", { token: owner.token, rawBody: body, timeout: 120000 });
  if (imported.status !== 201) throw new Error(`import: ${imported.status} ${imported.text}`);
  const id = imported.body.challenge.id;
  console.log(`import: ${Date.now() - t1} ms`);
  const exported = await fetch(`${server.url}/api/challenges/${id}/export`, { headers: { authorization: `Bearer ${owner.token}`, "accept-encoding": "gzip" } });
  const raw = await exported.arrayBuffer();
  console.log(`export over HTTP: ${(raw.byteLength / 1e6).toFixed(1)} MB (content-encoding: ${exported.headers.get("content-encoding") || "none"})`);

  const rows = [];
  for (let i = 0; i < RUNS; i++) {
    const p = await newPerson(browser, server);
    await p.context.addInitScript((token) => localStorage.setItem("duet.token", token), owner.token);
    await p.page.goto(`/challenges/${id}`);
    await p.page.locator('section[aria-label="Playback"][data-ready="true"]').waitFor({ timeout: 60000 });
    const marks = await p.page.evaluate(() =>
      Object.fromEntries(["load", "fetched", "read", "ready"].map((m) => [m, Math.round(performance.getEntriesByName(`duet:playback-${m}`)[0].startTime)])),
    );
    const slider = p.page.getByRole("slider", { name: "Timeline" });
    // At once: End (the whole log applied, before the background pass has kept anything).
    await slider.focus();
    const e0 = Date.now();
    await p.page.keyboard.press("End");
    await p.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    const firstEnd = Date.now() - e0;
    await p.page.locator('section[aria-label="Playback"][data-filled="true"]').waitFor({ timeout: 60000 });
    const filled = Math.round(await p.page.evaluate(() => performance.now() - performance.getEntriesByName("duet:playback-ready")[0].startTime));
    const s0 = Date.now();
    const keys = ["Home", "PageUp", "PageUp", "PageUp", "PageUp", "PageUp", "End", "PageDown", "PageDown", "Home"];
    for (const key of keys) await p.page.keyboard.press(key);
    await p.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    const seek = Math.round((Date.now() - s0) / keys.length);
    rows.push({ ...marks, seek, firstEnd, filled });
    console.log(
      `run ${i + 1}: ready ${marks.ready} ms after navigation (room and chunk ${marks.load} ms, export fetched and parsed ${marks.fetched - marks.load} ms, read ${marks.read - marks.fetched} ms, drawn ${marks.ready - marks.read} ms); ` +
        `End at once ${firstEnd} ms; background pass done ${filled} ms after ready; then a seek with its key press ${seek} ms`,
    );
    await p.context.close();
  }
  const median = (k) => rows.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
  console.log(`median: ready ${median("ready")} ms; End at once ${median("firstEnd")} ms; background pass ${median("filled")} ms; seek ${median("seek")} ms`);
} finally {
  await browser.close();
  await server.stop();
  server.cleanup();
}
