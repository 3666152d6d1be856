// phoenix.js Presence wrappers for the room tests.
import { Presence } from "phoenix";

/**
 * Attach a phoenix.js Presence to `channel` (before joining it) and record its callbacks.
 * Returns {presence, joins, leaves, syncs(), list(), byKey(key)}.
 */
export function trackPresence(channel) {
  const presence = new Presence(channel);
  const rec = { presence, joins: [], leaves: [], syncCount: 0 };
  presence.onJoin((key, current, newPres) =>
    rec.joins.push({ key, current: current ? clone(current) : undefined, metas: clone(newPres.metas), at: Date.now() }),
  );
  presence.onLeave((key, current, left) =>
    rec.leaves.push({ key, remaining: clone(current.metas), metas: clone(left.metas), at: Date.now() }),
  );
  presence.onSync(() => rec.syncCount++);
  rec.list = () => presence.list((key, { metas }) => ({ key, metas }));
  rec.byKey = (key) => rec.list().find((p) => p.key === key);
  /** Sorted [key, [phx_ref...]] pairs: equal on two clients iff they see the same presences. */
  rec.summary = () =>
    rec
      .list()
      .map(({ key, metas }) => [key, metas.map((m) => m.phx_ref).sort()])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  /** {key: number of metas}. */
  rec.counts = () => Object.fromEntries(rec.list().map(({ key, metas }) => [key, metas.length]));
  return rec;
}

const clone = (x) => JSON.parse(JSON.stringify(x));
