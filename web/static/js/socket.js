// The one Socket.IO connection of the page (WebSocket only, session cookie). Every client
// event is acknowledged; `emit` resolves with the ack or throws an ApiError with its code.
import { ApiError } from "./api.js";

const ACK_TIMEOUT_MS = 15000;
let socket = null;
const listeners = new Map(); // event -> Set(handler), survives reconnects
const stateHandlers = new Set();
let state = "idle"; // idle | connecting | connected | reconnecting | refused | unavailable

function setState(next, detail) {
  state = next;
  for (const handler of stateHandlers) handler(next, detail);
}

export function connectionState() {
  return state;
}

export function onConnectionState(handler) {
  stateHandlers.add(handler);
  return () => stateHandlers.delete(handler);
}

export function connect() {
  if (socket) return socket;
  if (typeof window.io !== "function") {
    setState("unavailable");
    return null;
  }
  setState("connecting");
  socket = window.io({
    path: "/socket.io",
    transports: ["websocket"],
    withCredentials: true,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
  });
  socket.on("connect", () => setState("connected"));
  socket.on("disconnect", (reason) => {
    // "io server disconnect": the server closed us (e.g. session revoked); no auto-reconnect
    setState(reason === "io server disconnect" ? "refused" : "reconnecting", { reason });
  });
  socket.on("connect_error", (err) => {
    const data = err && err.data;
    if (data && data.code) setState("refused", data);
    else setState("reconnecting", { reason: err && err.message });
  });
  socket.onAny((event, payload) => {
    const set = listeners.get(event);
    if (set) for (const handler of [...set]) {
      try {
        handler(payload || {});
      } catch (e) {
        console.error(`handler for ${event} failed`, e);
      }
    }
  });
  window.__tongbanSocket = socket; // for tests and support staff in the devtools
  return socket;
}

export function disconnect() {
  if (socket) {
    socket.offAny();
    socket.disconnect();
  }
  socket = null;
  listeners.clear();
  setState("idle");
}

export function on(event, handler) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(handler);
  return () => listeners.get(event)?.delete(handler);
}

export async function emit(event, payload) {
  if (!socket || !socket.connected) {
    throw new ApiError(0, { code: "offline", message: "实时连接已断开" });
  }
  let ack;
  try {
    ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
  } catch (err) {
    throw new ApiError(0, { code: "timeout", message: "服务器没有及时响应" });
  }
  if (!ack || ack.ok !== true) {
    throw new ApiError(0, (ack && ack.error) || { code: "error", message: "操作失败" });
  }
  return ack;
}
