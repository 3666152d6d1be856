// Measures Run: time from the click on Run to the first output on the
// runner's page and on the other person's page, for `print(1)` in Python and
// `console.log(1)` in JavaScript, first in a fresh browser profile (cold),
// then three more runs 8 s apart (the frame has the next interpreter loaded).
// Not a test: `node e2e/browser/run-timing.mjs` (needs target/release/duet
// and Chromium). The README's Run measurements come from it.
import { startServer, signIn, createChallenge } from "../lib/server.js";
import { launchBrowser, joinRoom } from "./helpers.js";

const PAUSE_MS = 8000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves (in the page) with the time the Output first shows text. */
const arm = (page) =>
  page.evaluate(() => {
    window.__firstOutput = new Promise((resolve) => {
      const el = document.querySelector(".output-text");
      const mo = new MutationObserver(() => {
        if (el.textContent) {
          mo.disconnect();
          resolve(performance.timeOrigin + performance.now());
        }
      });
      mo.observe(el, { childList: true, subtree: true, characterData: true });
    });
  });

async function once(runner, other) {
  await arm(runner.page);
  await arm(other.page);
  const clicked = await runner.page.evaluate(() => {
    const t = performance.timeOrigin + performance.now();
    document.querySelector(".run-button").click();
    return t;
  });
  const times = [];
  for (const p of [runner, other]) times.push(Math.round((await p.page.evaluate(() => window.__firstOutput)) - clicked));
  for (const p of [runner, other]) await p.page.waitForFunction(() => document.querySelector(".output-exit").textContent, null, { timeout: 60000 });
  return times;
}

const server = await startServer();
const browser = await launchBrowser();
try {
  const owner = await signIn(server, "Owner");
  for (const [language, code] of [["python", "print(1)\n"], ["javascript", "console.log(1)\n"]]) {
    const ch = await createChallenge(server, owner.token, { language });
    const alice = await joinRoom(browser, server, ch.id, "Alice");
    const bob = await joinRoom(browser, server, ch.id, "Bob");
    await alice.page.locator(".cm-content").click();
    await alice.page.keyboard.insertText(code);
    await sleep(300);
    const cold = await once(alice, bob);
    const warm = [];
    for (let i = 0; i < 3; i++) {
      await sleep(PAUSE_MS);
      warm.push(await once(alice, bob));
    }
    console.log(`${language}: first output [runner's page, other page] in ms: cold ${JSON.stringify(cold)}, warm ${JSON.stringify(warm)}`);
    await alice.context.close();
    await bob.context.close();
  }
} finally {
  await browser.close();
  await server.stop();
  server.cleanup();
}
