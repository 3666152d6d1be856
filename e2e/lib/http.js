// HTTP helpers for the REST API tests: requests that never throw on a status, and
// hand-made JWTs (HS256 with any key, or `alg: none`).
import { createHmac } from "node:crypto";
import http from "node:http";

/**
 * Call the API. Resolves to {status, headers, text, body} where body is the parsed JSON (or null).
 * opts: token (Bearer), body (JSON-encoded), rawBody (sent as is), headers.
 */
export async function api(server, method, path, { token, body, rawBody, headers = {}, timeout = 10000 } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (rawBody !== undefined) {
    payload = rawBody;
    if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["content-type"] = "application/json";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h["content-type"] = "application/json";
  }
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: h,
    body: payload,
    signal: AbortSignal.timeout(timeout),
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/**
 * Send a request with node:http and resolve as soon as the response arrives, even if the
 * server answers before reading the whole body (as a 413 may). Never throws on EPIPE.
 */
export function rawRequest(server, method, path, { headers = {}, body, chunked = false, timeout = 10000 } = {}) {
  const url = new URL(path, server.url);
  const length = body && !chunked ? { "content-length": Buffer.byteLength(body) } : {};
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, headers: { ...headers, ...length } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        const done = () => {
          clearTimeout(timer);
          let parsed = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, headers: res.headers, text, body: parsed });
        };
        res.on("end", done);
        res.on("error", done);
        res.on("aborted", done);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path} timed out`));
    }, timeout);
    req.on("error", (e) => {
      // EPIPE/ECONNRESET after the response arrived are fine; before it, report
      if (!req.res) {
        clearTimeout(timer);
        reject(e);
      }
    });
    if (body && chunked) {
      // Transfer-Encoding: chunked, 64 KiB a chunk: the server cannot know the size up front.
      const bytes = Buffer.from(body);
      for (let at = 0; at < bytes.length; at += 65536) req.write(bytes.subarray(at, at + 65536));
    } else if (body) req.write(body);
    req.end();
  });
}

export const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An HS256 JWT signed with `key` (string or Buffer). */
export function signJwt(claims, key, header = { alg: "HS256", typ: "JWT" }) {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

/** An unsigned `alg: none` JWT. */
export function noneJwt(claims) {
  return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}.`;
}

/** The claims of a JWT (no verification). */
export function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
}

export const nowSecs = () => Math.floor(Date.now() / 1000);
