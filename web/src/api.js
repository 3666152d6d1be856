// HTTP API client: JSON in, JSON out, Bearer token from auth storage.
import { getToken } from "./auth-store.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Cannot reach the server. Check your connection and try again.");
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* empty or non-JSON body */
  }
  if (!res.ok) {
    const msg = (data && typeof data.error === "string" && data.error) || `Request failed (${res.status})`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

export const getMe = () => api("GET", "/api/me").then((d) => d.user);
export const createSession = (first_name) => api("POST", "/api/session", { first_name });
export const listLanguages = () => api("GET", "/api/languages").then((d) => d.languages);
export const listChallenges = () => api("GET", "/api/challenges").then((d) => d.challenges);
export const getChallenge = (id) =>
  api("GET", `/api/challenges/${encodeURIComponent(id)}`).then((d) => d.challenge);
export const createChallenge = (fields) => api("POST", "/api/challenges", fields).then((d) => d.challenge);
/** A session's export (CONTRACT §7), read with the interviewer key if there is one. */
export const getExport = (id, key) =>
  api("GET", `/api/challenges/${encodeURIComponent(id)}/export${key ? `?key=${encodeURIComponent(key)}` : ""}`);

/**
 * What a room page asks for first, at once (while its code loads): the
 * challenge, and for an ended room the export its playback opens on.
 * Failures are left to the room, which asks again.
 */
export function prefetchRoom(id, key) {
  const challenge = getChallenge(id);
  const exported = challenge.then((c) => (c && c.status === "ended" ? getExport(id, key) : null));
  challenge.catch(() => {});
  exported.catch(() => {});
  return { challenge, exported };
}
