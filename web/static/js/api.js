// JSON over HTTP with the server's error bodies turned into ApiError; a lost session (login
// elsewhere, timeout) is reported once to whoever registered onSessionLost.

export class ApiError extends Error {
  constructor(status, error) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.code = (error && error.code) || "error";
    this.error = error || { code: this.code };
  }
}

const SESSION_LOST = new Set(["session_replaced", "session_expired", "session_revoked", "unauthenticated"]);
let sessionLost = () => {};

export function onSessionLost(handler) {
  sessionLost = handler;
}

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, { code: "network", message: "无法连接服务器，请检查网络。" });
  }
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("application/json")) {
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || { code: response.status === 404 ? "not_found" : "http_error", message: `HTTP ${response.status}` };
    const failure = new ApiError(response.status, error);
    if (response.status === 401 && SESSION_LOST.has(failure.code) && path !== "/api/login") {
      sessionLost(failure.code);
    }
    throw failure;
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);
export const patch = (path, body = {}) => api("PATCH", path, body);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
export const put = (path, body = {}) => api("PUT", path, body);
