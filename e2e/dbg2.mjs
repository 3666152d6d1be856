import { Socket } from "phoenix";
import WebSocket from "ws";
import { execFileSync } from "node:child_process";
const base = (p) => `http://127.0.0.1:${p}`;
async function signIn(p, name) {
  const r = await fetch(base(p) + "/api/session", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ first_name: name }) });
  return r.json();
}
const a = await signIn(4601, "Ana"); const b = await signIn(4601, "Ben");
const ch = await (await fetch(base(4601) + "/api/challenges", { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${a.token}` }, body: JSON.stringify({ title: "t", prompt: "p", language: "python" }) })).json();
const id = ch.challenge.id;
function join(port, tok, label) {
  const s = new Socket(`ws://127.0.0.1:${port}/socket`, { params: { token: tok }, transport: WebSocket });
  s.connect();
  const c = s.channel(`challenges:${id}`, {});
  c.on("response:updated", (m) => console.log(Date.now() % 100000, label, "updated", m.challenge.response));
  return new Promise((res) => c.join().receive("ok", () => res(c)).receive("error", (e) => console.log(label, "join error", e)));
}
const ca = await join(4601, a.token, "A@1");
const cb = await join(4602, b.token, "B@2");
await new Promise((r) => setTimeout(r, 1000));
console.log(execFileSync("../scripts/services.sh", ["redis-stop"]).toString());
ca.push("response:update", { response: "while down" }).receive("ok", () => console.log("A push ok")).receive("error", (e) => console.log("A push err", e));
await new Promise((r) => setTimeout(r, 500));
console.log(Date.now() % 100000, execFileSync("../scripts/services.sh", ["redis-start"]).toString());
await new Promise((r) => setTimeout(r, 6000));
process.exit(0);
