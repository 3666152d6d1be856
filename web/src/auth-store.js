// Token and last-used name, kept in localStorage.
const TOKEN_KEY = "duet.token";
const NAME_KEY = "duet.name";

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}
function write(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* storage disabled: the session lasts as long as the page */
  }
}

let memoryToken = null;

export function getToken() {
  return read(TOKEN_KEY) || memoryToken;
}
export function setToken(token) {
  memoryToken = token;
  write(TOKEN_KEY, token);
}
export function clearToken() {
  memoryToken = null;
  write(TOKEN_KEY, null);
}
export const getSavedName = () => read(NAME_KEY) || "";
export const saveName = (name) => write(NAME_KEY, name);

/** True when the token is missing or its `exp` claim is in the past. */
export function tokenExpired(token = getToken()) {
  if (!token) return true;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
  } catch {
    return false; // not a JWT we can read: let the server decide
  }
}
