// The web app under its Content-Security-Policy (the hardening review's
// risk 6), in Chromium: two people sign in, open a room, connect the socket
// and edit without a single violation; CodeMirror's injected styles and the
// remote caret's colour (a style attribute) apply; an inline script is blocked.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, signIn, createChallenge } from "../lib/server.js";
import { launchBrowser, newPerson, signInUI, waitForBadge, typeAtEnd, eventually, editorText } from "./helpers.js";

let server;
let browser;
let owner;
const people = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  owner = await signIn(server, "Owner");
});

after(async () => {
  for (const p of people) await p.context.close().catch(() => {});
  await browser?.close();
  await server?.stop();
  server?.cleanup();
});

/** A person whose pages record every CSP violation (events and console lines). */
async function watchedPerson() {
  const p = await newPerson(browser, server);
  people.push(p);
  p.console = [];
  p.page.on("console", (m) => {
    if (/content.security.policy/i.test(m.text())) p.console.push(m.text());
  });
  await p.context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`),
    );
  });
  return p;
}

async function violations(p) {
  return { events: await p.page.evaluate(() => window.__violations), console: p.console };
}

test("two people edit a room under the page policy: no violation, the socket connects, styles and carets render", { timeout: 60000 }, async () => {
  const c = await createChallenge(server, owner.token, { title: "Under CSP", prompt: "Write fizzbuzz", language: "python" });
  const a = await watchedPerson();
  const lobby = await a.page.goto("/");
  assert.match(lobby.headers()["content-security-policy"] ?? "", /script-src 'self'/, "the page is served with its policy");
  await signInUI(a.page, "Sophie");
  await a.page.getByLabel("Title").waitFor();
  const room = await a.page.goto(`/challenges/${c.id}`);
  assert.match(room.headers()["content-security-policy"] ?? "", /connect-src 'self'/);
  await a.page.locator(".cm-content").waitFor();
  await waitForBadge(a.page, "Connected"); // the WebSocket under connect-src 'self'

  const b = await watchedPerson();
  await b.page.goto(`/challenges/${c.id}`);
  await signInUI(b.page, "Antoin");
  await b.page.locator(".cm-content").waitFor();
  await waitForBadge(b.page, "Connected");

  await typeAtEnd(a.page, "for i in range(1, 101):");
  await eventually(async () => assert.equal(await editorText(b.page), "for i in range(1, 101):"));
  // CodeMirror's own <style> elements apply (without them .cm-editor is a block).
  assert.equal(await b.page.evaluate(() => getComputedStyle(document.querySelector(".cm-editor")).display), "flex");
  // A's caret on B's screen has A's colour, which only its style attribute gives
  // (y-codemirror.next's theme draws it black).
  const caret = b.page.locator(".cm-ySelectionCaret").first();
  await caret.waitFor();
  const border = await caret.evaluate((el) => getComputedStyle(el).borderLeftColor);
  assert.notEqual(border, "rgb(0, 0, 0)", `caret colour: ${border}`);
  assert.equal(await b.page.locator(".cm-ySelectionInfo").first().textContent(), "Sophie");

  for (const p of [a, b]) {
    assert.deepEqual(await violations(p), { events: [], console: [] });
    assert.deepEqual(p.errors, []);
  }

  // The policy is enforced (and the watch works): an injected inline script is blocked.
  const ran = await a.page.evaluate(async () => {
    const s = document.createElement("script");
    s.textContent = "window.__injected = true";
    document.head.append(s);
    await new Promise((r) => setTimeout(r, 100));
    return window.__injected === true;
  });
  assert.equal(ran, false, "an inline script ran");
  await eventually(async () => assert.ok((await violations(a)).events.some((v) => v.startsWith("script-src"))));
});
