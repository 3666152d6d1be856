// A made-up interview as an export file (CONTRACT §7, `GET .../export`):
// two people, their Yjs updates with times and authors, and the events a
// room records (joins, pastes, away / back, runs, the end). Deterministic
// for a seed. `POST /api/challenges/import` takes it as it is; the playback
// timing (browser/playback-timing.mjs) and its tests load long ones.
import * as Y from "yjs";

/** Tiny deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CODE = `def fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        if i % 15 == 0:
            out.append("FizzBuzz")
        elif i % 3 == 0:
            out.append("Fizz")
        elif i % 5 == 0:
            out.append("Buzz")
        else:
            out.append(str(i))
    return out

print("\\n".join(fizzbuzz(100)))
`;

/**
 * An export file of `edits` updates over `seconds`, by `people`
 * ([{id, first_name}], the first one types most). Returns the file and the
 * instants of its first and last update.
 */
export function generateSession({ people, edits = 20000, seconds = 3600, seed = 7, start = Date.parse("2026-11-30T09:00:00.000Z") }) {
  const rand = rng(seed);
  const docs = people.map(() => new Y.Doc());
  const texts = docs.map((d) => d.getText("response"));
  const updates = [];
  const events = [];
  // Time: edits arrive in bursts of typing with pauses between them; the
  // pauses are scaled so that the session lasts `seconds`.
  const gaps = [];
  let typing = 0;
  for (let i = 0; i < edits; i++) {
    const pause = rand() < 0.004 ? 5000 + rand() * 40000 : 0;
    const g = 40 + rand() * 120;
    typing += g;
    gaps.push([g, pause]);
  }
  const pauses = gaps.reduce((a, [, p]) => a + p, 0);
  const scale = Math.max(0, seconds * 1000 - typing) / (pauses || 1);
  let now = start + 2000;
  const iso = (t) => new Date(Math.round(t)).toISOString();
  for (const p of people) events.push({ at: iso(start + 500), user_id: p.id, first_name: p.first_name, kind: "join", data: JSON.stringify({ role: p === people[0] ? "candidate" : "interviewer" }) });

  let cursor = 0;
  let lastRun = now;
  let away = false;
  for (let i = 0; i < edits; i++) {
    const [g, pause] = gaps[i];
    now += g + pause * scale;
    // The candidate types most; the interviewer now and then.
    const who = people.length > 1 && rand() < 0.08 ? 1 : 0;
    const doc = docs[who];
    const text = texts[who];
    const len = text.length;
    cursor = Math.min(cursor, len);
    let update = null;
    const h = (u) => (update = u);
    doc.on("update", h);
    let inserted = 0;
    let deleted = 0;
    let paste = 0;
    const r = rand();
    if (r < 0.004 && len < 40000) {
      // a paste
      const at = Math.floor(rand() * CODE.length);
      const s = CODE.slice(at, at + 40 + Math.floor(rand() * 200));
      text.insert(cursor, s);
      inserted = s.length;
      paste = s.length;
      cursor += s.length;
    } else if (r < 0.13 && len > 0) {
      const n = Math.min(cursor || len, rand() < 0.05 ? 1 + Math.floor(rand() * 30) : 1);
      const from = Math.max(0, (cursor || len) - n);
      text.delete(from, n);
      deleted = n;
      cursor = from;
    } else {
      if (rand() < 0.02) cursor = Math.floor(rand() * (len + 1));
      const ch = CODE[i % CODE.length];
      text.insert(cursor, ch);
      inserted = 1;
      cursor += 1;
    }
    doc.off("update", h);
    for (const [j, other] of docs.entries()) if (j !== who) Y.applyUpdate(other, update);
    const person = people[who];
    updates.push({
      id: i + 1,
      doc: 0,
      at: iso(now),
      user_id: person.id,
      first_name: person.first_name,
      inserted,
      deleted,
      update_v1: Buffer.from(update).toString("base64"),
    });
    if (paste) events.push({ at: iso(now + 1), user_id: person.id, first_name: person.first_name, kind: "paste", data: JSON.stringify({ chars: paste }) });
    if (!away && rand() < 0.001) {
      away = true;
      events.push({ at: iso(now + 2), user_id: people[0].id, first_name: people[0].first_name, kind: "away", data: "{}" });
    } else if (away && rand() < 0.02) {
      away = false;
      events.push({ at: iso(now + 2), user_id: people[0].id, first_name: people[0].first_name, kind: "back", data: "{}" });
    }
    if (now - lastRun > 300000) {
      lastRun = now;
      const output = [{ stream: "stdout", data: "1\n2\nFizz\n4\nBuzz\n" }];
      events.push({ at: iso(now + 3), user_id: people[0].id, first_name: people[0].first_name, kind: "run", data: JSON.stringify({ run_id: `r${i}`, exit: 0, wall_ms: 40, timed_out: false, out_of_memory: false, truncated: false, reason: null, language: "python", output }) });
    }
  }
  if (away) events.push({ at: iso(now + 4), user_id: people[0].id, first_name: people[0].first_name, kind: "back", data: "{}" });
  const end = now + 5000;
  events.push({ at: iso(end), user_id: people[people.length - 1].id, first_name: people[people.length - 1].first_name, kind: "end", data: "{}" });
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const file = {
    format: "duet-export",
    version: 1,
    exported_at: iso(end + 1000),
    challenge: { title: "FizzBuzz, one hour", prompt: "Print 1..100, Fizz for 3, Buzz for 5.", language: "python", created_at: iso(start), updated_at: iso(now), ended_at: iso(end) },
    status: "ended",
    answer: texts[0].toString(),
    timeline: [],
    events,
    updates,
  };
  for (const d of docs) d.destroy();
  return { file, first: updates[0]?.at, last: updates[updates.length - 1]?.at, ended: iso(end) };
}
