// Yjs helpers: the real y-phoenix-channel provider, and a minimal hand-driven Yjs client
// whose every `yjs` push is awaited (to know which edits the server acknowledged).
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "@y/protocols/sync";
import { PhoenixChannelProvider } from "y-phoenix-channel";
import { push, join, arrayBufferOf, withTimeout } from "./phx.js";

export { Y, PhoenixChannelProvider };

export const MESSAGE_SYNC = 0;
export const MESSAGE_AWARENESS = 1;

/** Resolve once `provider.synced` is true (reject after ms). */
export function waitSynced(provider, ms = 5000) {
  if (provider.synced) return Promise.resolve();
  return withTimeout(
    new Promise((resolve) => {
      const handler = (state) => {
        if (state) {
          provider.off("synced", handler);
          resolve();
        }
      };
      provider.on("synced", handler);
    }),
    ms,
    `provider ${provider.roomname} sync`,
  );
}

/** A PhoenixChannelProvider on `socket` for challenge `id`, resolved once synced. */
export async function openProvider(socket, id, { sync = true, timeout = 5000 } = {}) {
  const doc = new Y.Doc();
  const provider = new PhoenixChannelProvider(socket, `challenges:${id}`, doc, { disableBc: true });
  const text = doc.getText("response");
  const opened = { doc, text, provider };
  if (sync) {
    try {
      await waitSynced(provider, timeout);
    } catch (e) {
      closeProvider(opened);
      throw e;
    }
  }
  return opened;
}

/**
 * Destroy a provider and its doc. The doc's destruction also stops the Awareness
 * interval timer, which would otherwise keep the test process alive.
 */
export function closeProvider({ provider, doc }) {
  try {
    provider.destroy();
  } catch {
    /* already destroyed */
  }
  try {
    provider.awareness.destroy();
    doc.destroy();
  } catch {
    /* already destroyed */
  }
}

/** A y-protocols sync "update" message carrying `update`. */
export function syncUpdateMessage(update) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, MESSAGE_SYNC);
  syncProtocol.writeUpdate(enc, update);
  return encoding.toUint8Array(enc);
}

/** A y-protocols sync step 1 message for `doc`. */
export function syncStep1Message(doc) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, MESSAGE_SYNC);
  syncProtocol.writeSyncStep1(enc, doc);
  return encoding.toUint8Array(enc);
}

/**
 * A Yjs client without the provider: it joins `challenges:<id>` on `socket`, syncs, and
 * pushes each local edit as one `yjs` message, resolving to the server's reply.
 */
export class ManualYjsClient {
  constructor(socket, id) {
    this.socket = socket;
    this.doc = new Y.Doc();
    this.text = this.doc.getText("response");
    this.channel = socket.channel(`challenges:${id}`, {});
    this.received = 0;
    this.channel.on("yjs", (data) => this.onYjs(data));
  }
  onYjs(data) {
    if (!(data instanceof ArrayBuffer)) return;
    this.received++;
    const decoder = decoding.createDecoder(new Uint8Array(data));
    const encoder = encoding.createEncoder();
    const type = decoding.readVarUint(decoder);
    if (type !== MESSAGE_SYNC) return;
    encoding.writeVarUint(encoder, MESSAGE_SYNC);
    syncProtocol.readSyncMessage(decoder, encoder, this.doc, "server");
    if (encoding.length(encoder) > 1) {
      this.channel.push("yjs", arrayBufferOf(encoding.toUint8Array(encoder)));
    }
  }
  async join() {
    const response = await join(this.channel);
    this.channel.push("yjs_sync", arrayBufferOf(syncStep1Message(this.doc)));
    return response;
  }
  /** Apply `fn(text)` locally and push the resulting update; resolve to {status, response}. */
  async edit(fn, ms = 5000) {
    let update = null;
    const handler = (u, origin) => {
      if (origin !== "server") update = u;
    };
    this.doc.on("update", handler);
    try {
      this.doc.transact(() => fn(this.text), "local");
    } finally {
      this.doc.off("update", handler);
    }
    if (!update) throw new Error("edit produced no update");
    return push(this.channel, "yjs", arrayBufferOf(syncUpdateMessage(update)), ms);
  }
}
