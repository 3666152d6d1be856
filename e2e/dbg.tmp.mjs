import { Socket } from "phoenix";
import WebSocket from "ws";
const base = (p) => `http://127.0.0.1:${p}`;
async function signIn(p, name) {
  const r = await fetch(base(p) + "/api/sessions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ first_name: name }) });
  return r.json();
}
const a = await signIn(4601, "Ana"); const b = await signIn(4601, "Ben");
const ch = await (await fetch(base(4601) + "/api/challenges", { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${a.token}` }, body: JSON.stringify({ title: "t", prompt: "p", language: "python" }) })).json();
console.log(JSON.stringify(ch).slice(0,300)); const id = (ch.challenge||ch).id;
function join(port, tok, label) {
  const s = new Socket(`ws://127.0.0.1:${port}/socket`, { params: { token: tok }, transport: WebSocket });
  s.connect();
  const c = s.channel(`challenges:${id}`, {});
  c.on("presence_state", (m) => console.log(label, "state", Object.keys(m)));
  c.on("presence_diff", (m) => console.log(label, "diff", JSON.stringify(m).slice(0, 200)));
  c.on("response:updated", (m) => console.log(label, "updated", m.challenge.response));
  return new Promise((res) => c.join().receive("ok", () => res(c)).receive("error", (e) => console.log(label, "join error", e)));
}
const ca = await join(4601, a.token, "A@1");
const cb = await join(4602, b.token, "B@2");
await new Promise((r) => setTimeout(r, 1500));
cb.push("response:update", { response: "hello from 2" }).receive("ok", () => console.log("B push ok")).receive("error", (e) => console.log("B push err", e));
await new Promise((r) => setTimeout(r, 1500));
process.exit(0);
