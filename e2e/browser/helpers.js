// Shared helpers for the browser tests: one Chromium, one context per person.
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A person = a fresh browser context (own localStorage, own cookies) with one page.
 * Collects page errors and dialogs so tests can assert none happened.
 */
export async function newPerson(browser, server) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    baseURL: server.url,
    permissions: ["clipboard-read", "clipboard-write"],
  });
  const page = await context.newPage();
  const person = { context, page, dialogs: [], errors: [] };
  watch(person, page);
  return person;
}

export function watch(person, page) {
  page.on("dialog", (d) => {
    person.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => person.errors.push(String(e)));
}

/** Fill the one-field sign-in on whatever page shows it. */
export async function signInUI(page, name) {
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Continue" }).click();
}

/**
 * The answer's editable element. An interviewer's page has other editors
 * (the private notes, CONTRACT §4 and §6), each inside an element named so.
 */
export const ANSWER = '.cm-content[aria-label="Shared code editor"]';

export function answerEditor(page) {
  return page.locator(ANSWER);
}

/** Open a room as a new person, signing in through the room's own prompt. */
export async function joinRoom(browser, server, challengeId, name) {
  const person = await newPerson(browser, server);
  await person.page.goto(`/challenges/${challengeId}`);
  await signInUI(person.page, name);
  await answerEditor(person.page).waitFor();
  await waitForBadge(person.page, "Connected");
  return person;
}

export function badge(page) {
  return page.locator(".badge");
}

export async function waitForBadge(page, text, timeout = 10000) {
  await page.waitForFunction((t) => document.querySelector(".badge")?.textContent === t, text, { timeout });
}

/** The editor's text as the person sees it (remote carets and their name labels left out). */
export function editorText(page) {
  return page.evaluate((answer) =>
    [...document.querySelectorAll(`${answer} > .cm-line`)]
      .map((line) => {
        const copy = line.cloneNode(true);
        copy.querySelectorAll(".cm-ySelectionCaret, .cm-widgetBuffer").forEach((e) => e.remove());
        return copy.textContent.replace(/\u2060/g, "");
      })
      .join("\n"),
    ANSWER,
  );
}

/** Names in the Participants list, in order. */
export function participantNames(page) {
  return page.getByRole("list", { name: "Participants" }).locator("li .name").allTextContents();
}

export function typingStatus(page) {
  return page.getByRole("status").textContent();
}

/** Type at the end of the document. */
export async function typeAtEnd(page, text, delay = 0) {
  await answerEditor(page).click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(text, { delay });
}

/** Retry `fn` until it stops throwing, or rethrow its last error after `timeout` ms. */
export async function eventually(fn, { timeout = 5000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}

export async function serverResponse(server, token, id) {
  const res = await fetch(`${server.url}/api/challenges/${id}`, { headers: { authorization: `Bearer ${token}` } });
  return (await res.json()).challenge.response;
}
