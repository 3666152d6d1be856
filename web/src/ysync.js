// Keeps a page's Yjs document the server's when the server refuses an edit
// (CONTRACT §6: "read only" while locked or ended; "invalid update", "out of
// sync", a size cap). y-phoenix-channel pushes every local update and
// ignores the reply: a refused edit would stay on this page only, and every
// later edit built on it would be refused too. Here the replies of the
// provider's pushes are watched: after a refusal the provider gets a fresh
// document, synced from the server, and the page binds its editors to it.
// An edit that was not saved ("not saved", "unavailable") is kept and sent
// again a little later (a sync with the server, which asks for what it lacks).
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as syncProtocol from "@y/protocols/sync";

/** Replies that mean the server will never take this page's edit. */
const DIVERGED = new Set(["read only", "invalid update", "out of sync", "update too large", "document too large"]);
/** How long to wait before sending an unsaved edit again, doubling up to the cap. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 16000;

/** A y-protocols sync step 1 of `doc`, as the provider sends it. */
function syncStep1(doc) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, 0); // messageSync
  syncProtocol.writeSyncStep1(enc, doc);
  return encoding.toUint8Array(enc).buffer;
}

/**
 * Watches `provider` (connected: its channel exists). `onDoc(doc)` is called
 * with the new document once it holds the server's state, and
 * `onRefused(reason)` when an edit was undone. Returns {doc(), destroy()}.
 */
export function guardSync(provider, { onDoc, onRefused = () => {} }) {
  const channel = provider.channel;
  const push = channel.push.bind(channel);
  let generation = 0;
  let unsaved = false;
  let retryMs = RETRY_MS;
  let retryTimer = null;
  let rebuilding = false;
  let destroyed = false;

  // Through the wrapped push below: a rebuild ends with the reply to it.
  const resync = () => {
    if (channel.state === "joined") channel.push("yjs_sync", syncStep1(provider.doc));
  };

  function refused(reason, gen) {
    if (destroyed || gen !== generation) return; // about a document already replaced
    if (DIVERGED.has(reason) && !(reason === "out of sync" && unsaved)) return rebuild(reason);
    // Not saved (or an edit built on one that was not): send it again soon.
    unsaved = true;
    if (retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      resync();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  function rebuild(reason) {
    generation++;
    unsaved = false;
    clearTimeout(retryTimer);
    retryTimer = null;
    const old = provider.doc;
    const fresh = new Y.Doc();
    // The same client id: the awareness states and carets are keyed by it,
    // and the server has none of the refused structs, so its clock goes on
    // from where the server's copy stands.
    fresh.clientID = old.clientID;
    // `_updateHandler` is the provider's listener of its document (y-phoenix-
    // channel 0.1.1, pinned exactly in package.json): it moves to the new one.
    old.off("update", provider._updateHandler);
    fresh.on("update", provider._updateHandler);
    provider.doc = fresh;
    provider.awareness.doc = fresh;
    rebuilding = true;
    onRefused(reason);
    resync(); // if not joined, the provider's rejoin syncs the new document
  }

  channel.push = (event, payload, timeout) => {
    const pushed = push(event, payload, timeout);
    if (event === "yjs_sync" && rebuilding) {
      // The server replies after its sync step 2: the new document then
      // holds everything the server has.
      const gen = generation;
      pushed.receive("ok", () => {
        if (destroyed || gen !== generation || !rebuilding) return;
        rebuilding = false;
        onDoc(provider.doc);
      });
    }
    // Only document messages (type 0): awareness is not kept by the server.
    if (event === "yjs" && payload instanceof ArrayBuffer && new Uint8Array(payload)[0] === 0) {
      const gen = generation;
      pushed
        .receive("error", (r) => refused(r && r.reason, gen))
        .receive("ok", () => {
          if (gen === generation && unsaved) {
            unsaved = false;
            retryMs = RETRY_MS;
          }
        });
    }
    return pushed;
  };

  return {
    doc: () => provider.doc,
    /** Whether a fresh document is being synced (the editors show the old one meanwhile). */
    rebuilding: () => rebuilding,
    destroy() {
      destroyed = true;
      clearTimeout(retryTimer);
    },
  };
}
