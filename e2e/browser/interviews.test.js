// Browser tests of interviews (CONTRACT §6): an interviewer (the creator, or
// whoever opens the interviewer link) and a candidate, real Chromium, a real
// server. The controls only the interviewer sees, the key that never reaches
// a candidate's page, lock / unlock / end, an edit the server refuses, the
// private notes, the integrity signals, Run off.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmdirSync, statfsSync, unlinkSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { startServer, signIn, createChallenge } from "../lib/server.js";
import { api } from "../lib/http.js";
import { launchBrowser, newPerson, signInUI, joinRoom, waitForBadge, editorText, typeAtEnd, eventually, serverResponse, answerEditor, participantNames } from "./helpers.js";

const T = { timeout: 90000 };

let server;
let browser;
let owner; // {token, user}: creates the rooms, and is their interviewer
const people = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  owner = await signIn(server, "Olivia");
});

after(async () => {
  for (const p of people) await p.context.close().catch(() => {});
  await browser?.close();
  await server?.stop();
  server?.cleanup();
});

/** A challenge the owner creates, with its interviewer key (POST /api/challenges gives it beside the challenge). */
async function room(fields = {}) {
  const body = { title: "Two Sum", prompt: "Return the indices of two numbers adding up to target.", language: "python", ...fields };
  const r = await api(server, "POST", "/api/challenges", { token: owner.token, body });
  assert.equal(r.status, 201, r.text);
  assert.ok(r.body.interviewer_key, "the creator gets the key");
  return { ...r.body.challenge, interviewer_key: r.body.interviewer_key };
}

/** The creator's page: signed in as the owner, the room open. */
async function openAsOwner(c) {
  const p = await newPerson(browser, server);
  people.push(p);
  await p.context.addInitScript((token) => localStorage.setItem("duet.token", token), owner.token);
  await p.page.goto(`/challenges/${c.id}`);
  await answerEditor(p.page).waitFor();
  await waitForBadge(p.page, "Connected");
  await p.page.getByRole("button", { name: "Lock editing" }).waitFor();
  return p;
}

async function candidate(c, name = "Sophie") {
  const p = await joinRoom(browser, server, c.id, name);
  people.push(p);
  await p.page.getByText("Pastes and focus changes are recorded").waitFor();
  return p;
}

const control = (c, what, body = {}) => api(server, "POST", `/api/challenges/${c.id}/${what}`, { token: owner.token, body });

/** What a candidate's page received and keeps: for a search of the key. */
function recordTraffic(person) {
  const seen = { responses: [], frames: [] };
  person.page.on("response", async (r) => {
    try {
      seen.responses.push(`${r.url()}\n${await r.text()}`);
    } catch {
      /* a body that is gone (redirect, navigation) */
    }
  });
  person.page.on("websocket", (ws) => {
    ws.on("framereceived", ({ payload }) => seen.frames.push(Buffer.isBuffer(payload) ? payload.toString("latin1") : String(payload)));
    ws.on("framesent", ({ payload }) => seen.frames.push(Buffer.isBuffer(payload) ? payload.toString("latin1") : String(payload)));
  });
  return seen;
}

/** Everything a page shows or stores: DOM (with attributes and field values), address, storage. */
function pageState(page) {
  return page.evaluate(() => {
    const values = [...document.querySelectorAll("input, textarea")].map((e) => e.value);
    const storage = (s) => Object.keys(s).map((k) => `${k}=${s.getItem(k)}`);
    return [document.documentElement.outerHTML, location.href, ...values, ...storage(localStorage), ...storage(sessionStorage)].join("\n");
  });
}

/** The text of the CodeMirror editor `locator` (other people's carets and their names left out). */
function cmText(locator) {
  return locator.evaluate((el) =>
    [...el.querySelectorAll(".cm-line")]
      .map((line) => {
        const copy = line.cloneNode(true);
        copy.querySelectorAll(".cm-ySelectionCaret, .cm-widgetBuffer").forEach((e) => e.remove());
        return copy.textContent.replace(/\u2060/g, "");
      })
      .join("\n"),
  );
}

const INTERVIEWER_ONLY = [
  ["button", "Lock editing"],
  ["button", "End interview"],
  ["button", "Copy candidate link"],
  ["button", "Copy interviewer link"],
  ["checkbox", "Allow Run"],
  ["textbox", "Private notes"],
  ["list", "Integrity signals"],
];

test("the interviewer's controls, the interviewer link, and a candidate's page that never holds the key", T, async () => {
  const c = await room();
  const key = c.interviewer_key;
  assert.ok(key);
  const o = await openAsOwner(c);
  for (const [role, name] of INTERVIEWER_ONLY) await o.page.getByRole(role, { name, exact: true }).waitFor({ state: "attached" });
  await o.page.getByRole("group", { name: "Private notes" }).waitFor();
  assert.equal(await o.page.getByText("Pastes and focus changes are recorded").count(), 0, "no candidate notice for the interviewer");

  // The candidate, with everything its page receives recorded from the start.
  const s = await newPerson(browser, server);
  people.push(s);
  const traffic = recordTraffic(s);
  await s.page.goto(`/challenges/${c.id}`);
  await signInUI(s.page, "Sophie");
  await answerEditor(s.page).waitFor();
  await waitForBadge(s.page, "Connected");
  await s.page.getByText("Pastes and focus changes are recorded").waitFor();
  for (const [role, name] of INTERVIEWER_ONLY) assert.equal(await s.page.getByRole(role, { name }).count(), 0, `${name} is not on a candidate's page`);
  assert.equal(await s.page.getByRole("group", { name: "Private notes" }).count(), 0);

  // Everyone sees who interviews.
  for (const p of [o, s]) {
    await eventually(async () => assert.deepEqual((await participantNames(p.page)).sort(), ["Olivia", "Sophie"]));
    await eventually(async () => assert.deepEqual(await p.page.locator(".participants li:has(.role-tag) .name").allTextContents(), ["Olivia"]));
  }

  // Copy candidate link: the room's address, no key.
  await o.page.getByRole("button", { name: "Copy candidate link" }).click();
  await o.page.getByText("Candidate link copied").waitFor();
  assert.equal(await o.page.evaluate(() => navigator.clipboard.readText()), `${server.url}/challenges/${c.id}`);
  // Copy interviewer link: with the key. A second interviewer opens it.
  await o.page.getByRole("button", { name: "Copy interviewer link" }).click();
  await o.page.getByText("Interviewer link copied").waitFor();
  const link = await o.page.evaluate(() => navigator.clipboard.readText());
  assert.equal(link, `${server.url}/challenges/${c.id}?key=${key}`);
  const b = await newPerson(browser, server);
  people.push(b);
  await b.page.goto(link);
  // The key leaves the address bar at once (before the name is even asked for).
  await b.page.getByLabel("Your name").waitFor();
  assert.equal(b.page.url(), `${server.url}/challenges/${c.id}`);
  await signInUI(b.page, "Bruno");
  for (const [role, name] of INTERVIEWER_ONLY) await b.page.getByRole(role, { name, exact: true }).waitFor({ state: "attached" });
  // A copied address bar is the candidate link; a reload or the link again keeps the interviewer.
  assert.ok(!b.page.url().includes("key"));
  await b.page.reload();
  await b.page.getByRole("button", { name: "End interview" }).waitFor();
  await b.page.goto("/");
  await b.page.goto(link);
  await b.page.getByRole("button", { name: "End interview" }).waitFor();
  assert.equal(b.page.url(), `${server.url}/challenges/${c.id}`);
  await eventually(async () => assert.deepEqual((await s.page.locator(".participants li:has(.role-tag) .name").allTextContents()).sort(), ["Bruno", "Olivia"]));

  // The candidate does things: types, and the interviewers lock, unlock, turn Run off and on.
  await typeAtEnd(s.page, "def two_sum(nums, target):");
  await o.page.getByRole("button", { name: "Lock editing" }).click();
  await s.page.getByText("Editing is locked").waitFor();
  await o.page.getByRole("button", { name: "Unlock editing" }).click();
  await eventually(async () => assert.equal(await s.page.getByText("Editing is locked").count(), 0));
  await o.page.getByLabel("Allow Run").uncheck();
  await s.page.getByText("Run is off").waitFor();
  await o.page.getByLabel("Allow Run").check();
  await eventually(async () => assert.equal(await s.page.getByText("Run is off").count(), 0));
  await s.page.reload();
  await waitForBadge(s.page, "Connected");
  await new Promise((r) => setTimeout(r, 500));

  // Nowhere in what the candidate's page shows, stores or received.
  assert.ok(!(await pageState(s.page)).includes(key), "the key is in the candidate's page");
  assert.ok(traffic.responses.length > 5, "responses were recorded");
  for (const r of traffic.responses) assert.ok(!r.includes(key), `a response to the candidate holds the key: ${r.slice(0, 200)}`);
  // Nor does it load the interviewer's code, or the playback's.
  for (const r of traffic.responses) assert.doesNotMatch(r.split("\n")[0], /\/assets\/(interview|playback)-/);
  assert.ok(traffic.frames.length > 5, "frames were recorded");
  for (const f of traffic.frames) assert.ok(!f.includes(key), `a WebSocket frame holds the key: ${f.slice(0, 200)}`);
  for (const p of [o, s, b]) assert.deepEqual(p.errors, []);
});

test("a wrong interviewer link says so, and offers to join as a candidate", T, async () => {
  const c = await room({ title: "Wrong key" });
  const p = await newPerson(browser, server);
  people.push(p);
  await p.page.goto(`/challenges/${c.id}?key=not-the-key`);
  await signInUI(p.page, "Mallory");
  await p.page.getByRole("heading", { name: "Wrong interviewer link" }).waitFor();
  assert.ok(!p.page.url().includes("key"));
  await p.page.getByRole("button", { name: "Join as a candidate" }).click();
  await answerEditor(p.page).waitFor();
  await waitForBadge(p.page, "Connected");
  await p.page.getByText("Pastes and focus changes are recorded").waitFor();
  assert.equal(await p.page.getByRole("button", { name: "Lock editing" }).count(), 0);
  assert.deepEqual(p.errors, []);
});

test("lock: the candidate cannot type and reads 'Editing is locked'; the interviewer still edits; unlock restores it", T, async () => {
  const c = await room({ title: "Locking" });
  const o = await openAsOwner(c);
  const s = await candidate(c);
  await typeAtEnd(s.page, "first line\n");
  await eventually(async () => assert.equal(await editorText(o.page), "first line\n"));

  await o.page.getByRole("button", { name: "Lock editing" }).click();
  for (const p of [o, s]) await p.page.getByText("Editing is locked", { exact: true }).waitFor();
  await o.page.getByRole("button", { name: "Unlock editing" }).waitFor();
  // The candidate's editor takes no typing (nor the Input); the interviewer's does.
  assert.equal(await answerEditor(s.page).getAttribute("contenteditable"), "false");
  await answerEditor(s.page).click({ force: true });
  await s.page.keyboard.type("blocked");
  assert.equal(await s.page.getByLabel("Input").isEditable(), false);
  await typeAtEnd(o.page, "# interviewer");
  await eventually(async () => assert.equal(await editorText(s.page), "first line\n# interviewer"));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await editorText(s.page), "first line\n# interviewer");
  assert.equal(await serverResponse(server, owner.token, c.id), "first line\n# interviewer");

  await o.page.getByRole("button", { name: "Unlock editing" }).click();
  await eventually(async () => assert.equal(await s.page.getByText("Editing is locked").count(), 0));
  await typeAtEnd(s.page, "\nback");
  await eventually(async () => assert.equal(await editorText(o.page), "first line\n# interviewer\nback"));
  await eventually(async () => assert.equal(await serverResponse(server, owner.token, c.id), "first line\n# interviewer\nback"));
  for (const p of [o, s]) assert.deepEqual(p.errors, []);
});

test("an edit the server refuses (made offline, then locked) does not stay on the candidate's screen", T, async () => {
  const c = await room({ title: "Refused" });
  const o = await openAsOwner(c);
  const s = await candidate(c);
  await typeAtEnd(s.page, "kept\n");
  await eventually(async () => assert.equal(await serverResponse(server, owner.token, c.id), "kept\n"));

  // The candidate's page cannot know about the lock: it is offline.
  await s.context.setOffline(true);
  await waitForBadge(s.page, "Offline", 5000);
  assert.equal((await control(c, "lock")).status, 200);
  await o.page.getByText("Editing is locked", { exact: true }).waitFor();
  await typeAtEnd(s.page, "written while locked");
  assert.equal(await editorText(s.page), "kept\nwritten while locked");

  // Back online: the server refuses the edit ("read only") and the page shows its text again.
  await s.context.setOffline(false);
  await waitForBadge(s.page, "Connected", 10000);
  await s.page.getByText("Editing is locked", { exact: true }).waitFor();
  await eventually(async () => assert.equal(await editorText(s.page), "kept\n"), { timeout: 5000 });
  await s.page.getByText("Your last change was undone").waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await editorText(s.page), "kept\n", "the refused text came back");
  assert.equal(await editorText(o.page), "kept\n");
  assert.equal(await serverResponse(server, owner.token, c.id), "kept\n");

  // Unlocked, the candidate's next edits go through (nothing left diverged).
  assert.equal((await control(c, "unlock")).status, 200);
  await eventually(async () => assert.equal(await s.page.getByText("Editing is locked").count(), 0));
  await typeAtEnd(s.page, "after");
  await eventually(async () => assert.equal(await editorText(o.page), "kept\nafter"));
  await eventually(async () => assert.equal(await serverResponse(server, owner.token, c.id), "kept\nafter"));
  for (const p of [o, s]) assert.deepEqual(p.errors, []);
});

test("end: both read 'Interview ended', nobody edits, and the room opens on its playback", T, async () => {
  const c = await room({ title: "Ending" });
  const o = await openAsOwner(c);
  const s = await candidate(c);
  await typeAtEnd(s.page, "print(42)");
  await eventually(async () => assert.equal(await serverResponse(server, owner.token, c.id), "print(42)"));

  await o.page.getByRole("button", { name: "End interview" }).click();
  // A confirmation first: Cancel keeps it live.
  await o.page.getByRole("alertdialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal(await o.page.getByText("Interview ended").count(), 0);
  await o.page.getByRole("button", { name: "End interview" }).click();
  await o.page.getByRole("button", { name: "End for everyone" }).click();
  for (const p of [o, s]) {
    await p.page.getByText("Interview ended", { exact: true }).waitFor();
    await p.page.locator('section[aria-label="Playback"][data-ready="true"]').waitFor();
    // It opens at the start; End shows the answer as it was left.
    const playback = p.page.getByRole("region", { name: "Playback" });
    await playback.getByRole("slider", { name: "Timeline" }).focus();
    await p.page.keyboard.press("End");
    await eventually(async () => assert.equal(await playback.locator(".pb-text").textContent(), "print(42)"));
  }
  assert.ok(await o.page.getByRole("button", { name: "End interview" }).isDisabled());
  // Back to the editor: read-only for both; Run is off.
  for (const p of [o, s]) {
    await p.page.getByRole("button", { name: "Back to the editor" }).click();
    await answerEditor(p.page).waitFor();
    assert.equal(await answerEditor(p.page).getAttribute("contenteditable"), "false");
    await p.page.getByText("Run is off").waitFor();
    assert.ok(await p.page.getByRole("button", { name: "Run", exact: true }).isDisabled());
  }
  // A page opened afterwards opens on the playback.
  const late = await joinRoomEnded(c, "Lea");
  await late.page.getByText("Interview ended", { exact: true }).waitFor();
  await late.page.locator('section[aria-label="Playback"][data-ready="true"]').waitFor();
  assert.equal(await serverResponse(server, owner.token, c.id), "print(42)");
  for (const p of [o, s, late]) assert.deepEqual(p.errors, []);
});

/** A new person in an ended room (which opens on the playback, the editor hidden). */
async function joinRoomEnded(c, name) {
  const p = await newPerson(browser, server);
  people.push(p);
  await p.page.goto(`/challenges/${c.id}`);
  await signInUI(p.page, name);
  await waitForBadge(p.page, "Connected");
  return p;
}

test("private notes: a second interviewer sees them live; they never reach the candidate's page", T, async () => {
  const c = await room({ title: "Notes" });
  const MARKER = `private-${Math.random().toString(36).slice(2)}`;
  const s = await newPerson(browser, server);
  people.push(s);
  const traffic = recordTraffic(s);
  await s.page.goto(`/challenges/${c.id}`);
  await signInUI(s.page, "Sophie");
  await waitForBadge(s.page, "Connected");
  const o = await openAsOwner(c);
  const b = await newPerson(browser, server);
  people.push(b);
  await b.page.goto(`/challenges/${c.id}?key=${c.interviewer_key}`);
  await signInUI(b.page, "Bruno");
  const notesB = b.page.getByRole("textbox", { name: "Private notes" });
  await notesB.waitFor();

  await o.page.getByRole("textbox", { name: "Private notes" }).click();
  await o.page.keyboard.type(`Strong start. ${MARKER}`);
  await eventually(async () => assert.equal(await cmText(notesB), `Strong start. ${MARKER}`));
  await notesB.click();
  await b.page.keyboard.press("Control+End");
  await b.page.keyboard.type(" Agreed.");
  await eventually(async () => assert.equal(await cmText(o.page.getByRole("textbox", { name: "Private notes" })), `Strong start. ${MARKER} Agreed.`));
  // The answer is untouched, and a reload of the notes keeps them.
  assert.equal(await editorText(o.page), "");
  await b.page.reload();
  await eventually(async () => assert.equal(await cmText(b.page.getByRole("textbox", { name: "Private notes" })), `Strong start. ${MARKER} Agreed.`));

  await new Promise((r) => setTimeout(r, 500));
  await s.page.reload();
  await waitForBadge(s.page, "Connected");
  assert.ok(!(await pageState(s.page)).includes(MARKER), "the notes are in the candidate's page");
  assert.ok(traffic.frames.length > 5);
  for (const f of traffic.frames) assert.ok(!f.includes(MARKER), "a frame to the candidate holds the notes");
  for (const r of traffic.responses) assert.ok(!r.includes(MARKER), "a response to the candidate holds the notes");
  for (const p of [o, s, b]) assert.deepEqual(p.errors, []);
});

test("a candidate's paste (with its size), leaving the page and coming back show up for the interviewer", T, async () => {
  const c = await room({ title: "Signals" });
  const o = await openAsOwner(c);
  const s = await candidate(c);
  const pasted = "for i, n in enumerate(nums):\n    seen[n] = i\n";
  await s.page.evaluate((t) => navigator.clipboard.writeText(t), pasted);
  await answerEditor(s.page).click();
  await s.page.keyboard.press("Control+V");
  await eventually(async () => assert.equal(await editorText(s.page), pasted));
  const signals = o.page.getByRole("list", { name: "Integrity signals" });
  await eventually(async () => assert.match(await signals.textContent(), new RegExp(`Sophie pasted ${pasted.length} characters`)), { timeout: 3000 });
  // Leaving (the window loses focus) and coming back.
  await s.page.evaluate(() => window.dispatchEvent(new Event("blur")));
  await eventually(async () => assert.match(await signals.locator("li").first().textContent(), /Sophie left the page/), { timeout: 3000 });
  await s.page.evaluate(() => window.dispatchEvent(new Event("focus")));
  await eventually(async () => assert.match(await signals.locator("li").first().textContent(), /Sophie came back/), { timeout: 3000 });
  // An interviewer who opens the room later finds them too (from the timeline).
  const b = await newPerson(browser, server);
  people.push(b);
  await b.page.goto(`/challenges/${c.id}?key=${c.interviewer_key}`);
  await signInUI(b.page, "Bruno");
  const later = b.page.getByRole("list", { name: "Integrity signals" });
  await eventually(async () => assert.equal(await later.locator("li").count(), 3));
  // The interviewer's own paste is not reported.
  await o.page.evaluate((t) => navigator.clipboard.writeText(t), "x = 1");
  await answerEditor(o.page).click();
  await o.page.keyboard.press("Control+V");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await signals.locator("li").count(), 3);
  for (const p of [o, s, b]) assert.deepEqual(p.errors, []);
});

test("Run off: the button is disabled with 'Run is off' for everyone; Run on again", T, async () => {
  const c = await room({ title: "Run off", language: "javascript" });
  const o = await openAsOwner(c);
  const s = await candidate(c);
  const run = (p) => p.page.getByRole("button", { name: "Run", exact: true });
  for (const p of [o, s]) await eventually(async () => assert.equal(await run(p).isDisabled(), false));
  await o.page.getByLabel("Allow Run").uncheck();
  for (const p of [o, s]) {
    await p.page.getByText("Run is off").waitFor();
    assert.ok(await run(p).isDisabled());
  }
  await o.page.getByLabel("Allow Run").check();
  for (const p of [o, s]) {
    await eventually(async () => assert.equal(await run(p).isDisabled(), false));
    assert.equal(await p.page.getByText("Run is off").count(), 0);
  }
  for (const p of [o, s]) assert.deepEqual(p.errors, []);
});

/** Mounts a small tmpfs on a new temp dir (as root; as e2e/tests/chaos.test.js does): its path, or why not. */
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

/** Fills the file system of `file` to the last byte. */
function fillUp(file) {
  const { bavail, bsize } = statfsSync(joinPath(file, ".."));
  try {
    writeFileSync(file, Buffer.alloc(Math.max(0, bavail * bsize - 8192)));
    for (;;) appendFileSync(file, Buffer.alloc(1024));
  } catch (e) {
    if (e.code !== "ENOSPC") throw e;
  }
}

test("disk full: a candidate's edit that was not saved stays on the screen, and is saved once there is room", T, async (t) => {
  const mount = mountTmpfs("3m");
  if (!mount.dir) {
    t.skip(`skipped: ${mount.why}`);
    return;
  }
  const filler = joinPath(mount.dir, "filler");
  let srv;
  t.after(async () => {
    await srv?.kill();
    unmount(mount.dir);
  });
  srv = await startServer({ dataDir: mount.dir });
  const me = await signIn(srv, "Olivia");
  const c = await createChallenge(srv, me.token, { title: "Disk full" });
  const s = await newPerson(browser, srv);
  people.push(s);
  const traffic = recordTraffic(s);
  await s.page.goto(`/challenges/${c.id}`);
  await signInUI(s.page, "Sophie");
  await waitForBadge(s.page, "Connected");
  await typeAtEnd(s.page, "saved\n");
  await eventually(async () => assert.equal(await serverResponse(srv, me.token, c.id), "saved\n"));

  fillUp(filler);
  // The WAL starts over after each checkpoint, so a few commits may still fit in space the file
  // already holds: keep typing, a word at a time, until the server answers "not saved".
  let typed = "saved\n";
  const notSaved = () => traffic.frames.some((f) => f.includes('"not saved"'));
  for (let i = 0; i < 40 && !notSaved(); i++) {
    const word = `w${i} `;
    await typeAtEnd(s.page, word, 20);
    typed += word;
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.ok(notSaved(), "the server answered \"not saved\" once the disk was full");
  await new Promise((r) => setTimeout(r, 1000));
  const stored = await serverResponse(srv, me.token, c.id);
  assert.ok(typed.startsWith(stored) && stored.length < typed.length, `only a prefix was saved: ${JSON.stringify(stored)} of ${JSON.stringify(typed)}`);
  assert.equal(await editorText(s.page), typed, "the unsaved edit stays on the screen");
  assert.equal(await s.page.getByText("Your last change was undone").count(), 0);

  unlinkSync(filler);
  await eventually(async () => assert.equal(await serverResponse(srv, me.token, c.id), typed), { timeout: 20000, interval: 200 });
  assert.equal(await editorText(s.page), typed);
  assert.deepEqual(s.errors, []);
});
