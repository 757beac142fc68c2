// One client process in Node.js: the same work as clients.py (Socket.IO connections for a
// share of the windows, all their staff, and a share of the callers, who only call windows
// held in this same process), with the reference Socket.IO client from the npm registry
// (socket.io-client, pinned by package-lock.json, as the browser app uses it).
//
// Why a second client: on a 2-core machine the benchmark's clients share the server's cores,
// and Python clients for 5,000 sockets emit their requests late and read their answers late
// (their own loop), which the latency figure then counts as the server's. Node's clients do
// the same work on a fraction of the CPU (run.py prints both: clients' CPU and emit lag).
//
// Times are CLOCK_MONOTONIC seconds (process.hrtime is libuv's uv_hrtime, which reads
// CLOCK_MONOTONIC on Linux, as Python's time.monotonic does): the coordinator's phase start
// and this process's measurements are on one clock.
//
// Protocol (run.py, class NodeClients): the first line on stdin is
// {"urls": [...], "windows": [{"case_ids": [...], "staff_tokens": [...]}], "caller_tokens": [...]};
// then one JSON array per line, ["connect", "callers"|"staff", concurrency],
// ["phase", rate, seconds, start_at] or ["close"], each answered by one JSON line on stdout.

import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const COOKIE = "tongban_session";
const TIMEOUT_MS = 10_000; // an ack or an incoming taking longer counts as an error

const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, Math.max(0, s * 1000)));

class Worker {
  constructor({ urls, windows, caller_tokens: callerTokens }) {
    this.urls = urls;
    this.sockets = 0;
    this.windows = windows;
    this.callerTokens = callerTokens;
    this.staff = [];
    this.callers = [];
    this.free = [];
    this.calls = new Map(); // call id -> {times: [], first: Promise<number>, resolve}
    this.connectErrors = {};
  }

  call(callId) {
    let entry = this.calls.get(callId);
    if (entry === undefined) {
      entry = { times: [] };
      entry.first = new Promise((resolve) => (entry.resolve = resolve));
      this.calls.set(callId, entry);
    }
    return entry;
  }

  onIncoming(data) {
    const t = now();
    const entry = this.call(data.call_id);
    entry.times.push(t);
    if (entry.times.length === 1) entry.resolve(t);
  }

  connectOne(token, callee) {
    const url = this.urls[this.sockets++ % this.urls.length];
    const socket = io(url, {
      forceNew: true, // one connection per socket, as separate browsers would have
      transports: ["websocket"],
      extraHeaders: { Cookie: `${COOKIE}=${token}` },
      reconnection: false,
      timeout: 30_000,
    });
    if (callee) socket.on("call:incoming", (data) => this.onIncoming(data));
    return new Promise((resolve) => {
      socket.once("connect", () => {
        (callee ? this.staff : this.callers).push(socket);
        resolve();
      });
      socket.once("connect_error", (err) => {
        const key = `${err.name}: ${String(err.message).slice(0, 80)}`;
        this.connectErrors[key] = (this.connectErrors[key] ?? 0) + 1;
        socket.close();
        resolve();
      });
    });
  }

  async connect(who, concurrency) {
    const started = now();
    const callee = who !== "callers";
    const tokens = callee ? this.windows.flatMap((w) => w.staff_tokens) : this.callerTokens;
    let next = 0;
    const lane = async () => {
      while (next < tokens.length) await this.connectOne(tokens[next++], callee);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, lane));
    if (!callee) this.free = [...this.callers];
    return {
      connected: (callee ? this.staff : this.callers).length,
      wanted: tokens.length,
      seconds: now() - started,
      errors: this.connectErrors,
    };
  }

  async request(caller, caseId, ph) {
    const t0 = now();
    let callId = null;
    try {
      let ack;
      try {
        ack = await caller.timeout(TIMEOUT_MS).emitWithAck("call:request", { case_id: caseId });
      } catch (err) {
        count(ph.errors, caller.connected ? "request_ack_timeout" : "request:disconnected");
        return;
      }
      ph.ack.push(now() - t0);
      if (!ack.ok) {
        const error = ack.error ?? {};
        count(ph.errors, `request:${error.code}`);
        callId = error.call_id ?? null; // call_already_active: cancel it below
        return;
      }
      callId = ack.call_id;
      ph.expected += ack.online ?? 0;
      const entry = this.call(callId);
      let timer;
      const first = await Promise.race([
        entry.first,
        new Promise((resolve) => (timer = setTimeout(() => resolve(null), TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
      if (first === null) count(ph.errors, "no_incoming");
      else ph.first.push(first - t0);
      if (entry.times.length) ph.last.push(Math.max(...entry.times) - t0);
    } finally {
      if (callId !== null) {
        const t1 = now();
        try {
          const done = await caller
            .timeout(TIMEOUT_MS)
            .emitWithAck("call:cancel", { call_id: callId });
          ph.cancel_ack.push(now() - t1);
          if (!done.ok) count(ph.errors, `cancel:${done.error?.code}`);
        } catch (err) {
          count(ph.errors, caller.connected ? "cancel_ack_timeout" : "cancel:disconnected");
        }
        ph.delivered += this.calls.get(callId)?.times.length ?? 0;
        // late deliveries of this call are not counted (the phase ends by then)
        this.calls.delete(callId);
      }
      this.free.push(caller);
    }
  }

  async phase(rate, seconds, startAt) {
    const ph = {
      sent: 0, skipped: 0, first: [], last: [], ack: [], cancel_ack: [], emit_lag: [],
      expected: 0, delivered: 0, errors: {},
    };
    const cpu0 = cpu();
    await sleep(startAt - now());
    // how late this process's own loop ran (a GC pause, a CPU shared with the server): a
    // delivery it read that late counts in the latency as if the server had been slow
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const count = Math.round(rate * seconds); // rate 0: an idle phase
    const windows = this.windows.filter((w) => w.case_ids.length && w.staff_tokens.length);
    const caseFor = (i) => {
      // consecutive requests go to different windows, each window's cases in turn
      const w = windows[i % windows.length];
      return w.case_ids[Math.floor(i / windows.length) % w.case_ids.length];
    };
    const requests = [];
    for (let i = 0; i < count; i++) {
      const due = startAt + i / rate;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      ph.emit_lag.push(Math.max(0, now() - due));
      if (!this.free.length || !windows.length) {
        ph.skipped++;
        continue;
      }
      ph.sent++;
      requests.push(this.request(this.free.pop(), caseFor(i), ph));
    }
    if (count === 0) await sleep(startAt + seconds - now());
    await Promise.race([Promise.all(requests), sleep(3 * (TIMEOUT_MS / 1000) + 5)]);
    delay.disable();
    ph.cpu_s = cpu() - cpu0;
    ph.loop_delay_p99_ms = delay.percentile(99) / 1e6;
    ph.loop_delay_max_ms = delay.max / 1e6;
    ph.connected = [...this.staff, ...this.callers].filter((s) => s.connected).length;
    return ph;
  }

  close() {
    const everyone = [...this.staff, ...this.callers];
    for (const s of everyone) s.disconnect();
    return { closed: everyone.length };
  }
}

function count(counter, key) {
  counter[key] = (counter[key] ?? 0) + 1;
}

async function main() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let worker = null;
  const reply = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
  for await (const line of lines) {
    if (!line.trim()) continue;
    if (worker === null) {
      worker = new Worker(JSON.parse(line));
      continue;
    }
    const [name, ...args] = JSON.parse(line);
    if (name === "connect") reply(await worker.connect(args[0], args[1]));
    else if (name === "phase") reply(await worker.phase(args[0], args[1], args[2]));
    else if (name === "close") {
      reply(worker.close());
      break;
    } else reply({ error: `unknown command ${name}` });
  }
  // sockets closed: nothing keeps the loop alive but stdin
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
