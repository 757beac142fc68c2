// The window clerk's console. Applicant side (R1): pick or register a case, 请求协助, watch the
// ring. Home side (R2): presence and office hours, the incoming call with 接听 / 拒绝.
// Department experts see the home-side part when invited (R3). The status line at the top
// always says what is happening.
import { get } from "./api.js";
import { dialog, fmtClock, fmtTime, h, replace, toast } from "./dom.js";
import { askNotificationPermission, startRinging, stopRinging } from "./alerting.js";
import { caseSummary, casePicker } from "./cases.js";
import { openCall } from "./call.js";
import { END_REASONS, errorText, WINDOW_KINDS } from "./messages.js";
import * as socket from "./socket.js";

const DECLINE_PRESETS = ["正在接待现场群众，请稍后再呼叫", "该事项不属于本窗口办理", "材料问题已电话答复", "系统或设备故障"];

export function mount(root, me) {
  const kinds = new Set((me.windows || []).map((w) => w.kind));
  const applicantSide = kinds.has("applicant") || kinds.has("both");
  const homeSide = kinds.has("home") || kinds.has("both");
  const expert = me.role === "expert";
  const ui = {};
  const state = {
    selectedCase: null,
    outgoing: null, // {callId, case, window, onDuty, online, startedAt, overdue, reminded, declines, deadlines}
    incoming: new Map(), // callId -> call:incoming payload (+ overdue)
    inCall: null,
    presence: sessionStorage.getItem("tongban.presence") || "online",
    presenceAck: null,
    lastEnded: null,
    recording: new Map(), // callId -> last call:recording state (it may come before the call view)
  };
  const offs = [];

  // ---- layout ------------------------------------------------------------------------

  ui.status = h("div", { id: "status-line", class: "status-line", role: "status", "aria-live": "polite" });
  ui.incoming = h("div", { id: "incoming" });
  const sections = [ui.status, ui.incoming];
  if (homeSide || expert) sections.push(homePanel());
  if (applicantSide) {
    ui.picker = casePicker({
      onSelect: (c) => {
        state.selectedCase = c;
        render();
      },
    });
    ui.request = h("section", { class: "card", id: "request" });
    sections.push(h("div", { class: "grid-2" }, ui.picker.element, ui.request));
  }
  if (!applicantSide && !homeSide && !expert) {
    sections.push(h("div", { class: "notice-box" }, "您的账号没有分配窗口，无法发起或接听视频协助。请联系管理员。"));
  }
  replace(root, sections);

  function homePanel() {
    ui.presenceBtns = {
      online: h("button", { type: "button", class: "btn btn-huge", id: "presence-online", onclick: () => setPresence("online") }, "在线"),
      away: h("button", { type: "button", class: "btn btn-huge", id: "presence-away", onclick: () => setPresence("away") }, "暂离"),
    };
    ui.presenceText = h("div", { id: "presence-text", class: "hint" });
    const homeWindows = (me.windows || []).filter((w) => w.kind === "home" || w.kind === "both");
    return h("section", { class: "card", id: "presence" },
      h("h2", {}, expert ? "业务专家" : "属地窗口 · 在岗状态"),
      expert ? h("p", {}, `${me.department || ""} 受属地窗口邀请时，来电会在本页面响铃。`) : null,
      homeWindows.map((w) => h("div", { class: "big-facts" },
        h("div", {}, h("b", {}, "窗口"), `${w.hall} · ${w.name}（${WINDOW_KINDS[w.kind] || w.kind}）`),
        h("div", {}, h("b", {}, "今日办公"), officeHoursText(w)))),
      homeSide ? h("div", { class: "btn-row", role: "group", "aria-label": "在岗状态" }, ui.presenceBtns.online, ui.presenceBtns.away) : null,
      ui.presenceText,
      h("p", { class: "hint" }, "办公时间内请保持本页面打开并处于“在线”，来电时会响铃并弹出提醒。"));
  }

  // ---- presence (home side) ----------------------------------------------------------

  async function setPresence(status) {
    state.presence = status;
    sessionStorage.setItem("tongban.presence", status);
    try {
      const ack = await socket.emit("presence:set", { status });
      state.presenceAck = ack.status || status;
    } catch (err) {
      state.presenceAck = null;
      if (err.code !== "offline") toast(`在岗状态未能更新：${errorText(err.error)}`, { error: true });
    }
    render();
  }

  // ---- requesting (applicant side) ---------------------------------------------------

  async function requestHelp() {
    const c = state.selectedCase;
    if (!c) return;
    ui.requestError = null;
    ui.requesting = true;
    render();
    try {
      const ack = await socket.emit("call:request", { case_id: c.id });
      state.outgoing = {
        callId: ack.call_id,
        case: c,
        window: ack.window,
        onDuty: normaliseOnDuty(ack.on_duty),
        online: ack.online,
        startedAt: Date.now(),
        overdue: false,
        reminded: [],
        declines: [],
        overdueAt: ack.overdue_at,
        limitAt: ack.limit_at,
      };
      state.lastEnded = null;
    } catch (err) {
      ui.requestError = errorText(err.error);
      if (err.code === "call_already_active" && err.error.call_id) resumeCall(err.error.call_id);
    } finally {
      ui.requesting = false;
      render();
    }
  }

  async function cancelRequest() {
    const out = state.outgoing;
    if (!out) return;
    try {
      await socket.emit("call:cancel", { call_id: out.callId });
      endOutgoing(out.overdue ? "已取消。呼叫已超时未接，将按规定记为属地窗口未接。" : "已取消协助请求。");
    } catch (err) {
      toast(`取消失败：${errorText(err.error)}`, { error: true });
    }
  }

  function endOutgoing(text) {
    state.outgoing = null;
    state.lastEnded = text;
    render();
  }

  // ---- incoming (home side and experts) ----------------------------------------------

  function addIncoming(data) {
    if (state.inCall) return; // busy: colleagues pick it up
    state.incoming.set(String(data.call_id), data);
    const caller = data.caller || {};
    startRinging(`${caller.hall || "申请地窗口"} 请求视频协助`, `${data.case?.matter_name || ""} ${data.case?.case_no || ""}`);
    render();
  }

  function dropIncoming(callId, note) {
    if (!state.incoming.delete(String(callId))) return;
    if (state.incoming.size === 0) stopRinging();
    if (note) toast(note);
    render();
  }

  async function accept(data) {
    const btn = document.getElementById(`accept-${data.call_id}`);
    if (btn) btn.disabled = true;
    try {
      const ack = await socket.emit("call:accept", { call_id: data.call_id });
      dropIncoming(data.call_id);
      stopRinging();
      const call = ack.call || {};
      enterCall({
        callId: data.call_id,
        role: data.role || "callee",
        homeSide: true,
        caseInfo: call.case || data.case,
        participants: membersOf(call, [data.caller, me]),
      });
    } catch (err) {
      if (btn) btn.disabled = false;
      dropIncoming(data.call_id);
      toast(errorText(err.error), { error: true });
    }
  }

  async function decline(data) {
    const reason = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const text = h("textarea", { id: "decline-reason", name: "reason", maxlength: 200, required: true, placeholder: "请写明拒绝的原因（必填）" });
      const form = h("form", { id: "decline-form", novalidate: true },
        h("h2", {}, "拒绝协助请求"),
        h("p", { class: "hint" }, "按规定，属地窗口不得无故拒绝视频协助，请写明原因。原因会告知申请地窗口并计入报表。"),
        h("div", { class: "btn-row" }, DECLINE_PRESETS.map((p) => h("button", {
          type: "button", class: "btn btn-quiet", onclick: () => { text.value = p; },
        }, p))),
        h("label", { for: "decline-reason" }, "拒绝原因"),
        text,
        error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-danger" }, "确定拒绝"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "返回")));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const value = text.value.trim();
        if (!value) {
          error.textContent = "请填写拒绝的原因。";
          error.hidden = false;
          text.focus();
          return;
        }
        close(value);
      });
      return form;
    });
    if (!reason) return;
    try {
      await socket.emit("call:decline", { call_id: data.call_id, reason });
      dropIncoming(data.call_id, "已拒绝该协助请求。");
    } catch (err) {
      toast(errorText(err.error), { error: true });
    }
  }

  // ---- in the call -------------------------------------------------------------------

  async function enterCall(info) {
    if (state.inCall) return;
    state.inCall = String(info.callId);
    stopRinging();
    render();
    const result = await openCall({ ...info, me, recording: state.recording.get(String(info.callId)) });
    state.inCall = null;
    state.outgoing = null;
    state.lastEnded = `上一次通话：${END_REASONS[result.reason] || "已结束"}。`;
    if (ui.picker) ui.picker.refresh();
    render();
  }

  /** After a reload or a reconnect: the calls this user still has (GET /api/calls?active=1). */
  async function syncActive() {
    let calls = [];
    try {
      calls = (await get("/api/calls?active=1")).calls || [];
    } catch (err) {
      return; // older servers: nothing to resume
    }
    for (const call of calls) resumeFrom(call);
  }

  async function resumeCall(callId) {
    try {
      resumeFrom(await get(`/api/calls/${callId}`));
    } catch (err) { /* shown by the caller */ }
  }

  function resumeFrom(call) {
    const mine = (call.members || []).find((m) => m.username === me.username);
    const ringing = call.state === "ringing" || call.state === "overdue" || call.state === "requested";
    if (call.state === "answered" && mine && mine.joined_at && !mine.left_at) {
      enterCall({
        callId: call.id,
        role: mine.role,
        homeSide: mine.role !== "caller",
        caseInfo: call.case,
        participants: membersOf(call, []),
      });
    } else if (ringing && call.caller && call.caller.username === me.username) {
      if (!state.outgoing || String(state.outgoing.callId) !== String(call.id)) {
        state.outgoing = {
          callId: call.id,
          case: call.case,
          window: call.window,
          onDuty: normaliseOnDuty((call.members || []).filter((m) => m.role === "callee")),
          online: null,
          startedAt: Date.parse(call.requested_at) || Date.now(),
          overdue: Boolean(call.overdue_at) && call.state !== "requested",
          reminded: [],
          declines: (call.members || []).filter((m) => m.declined_at).map((m) => ({ by: m, reason: m.decline_reason })),
        };
        render();
      }
    } else if (ringing && mine && !mine.declined_at && mine.role !== "caller") {
      addIncoming({
        call_id: call.id, role: mine.role, case: call.case, caller: call.caller, window: call.window,
        requested_at: call.requested_at, overdue: Boolean(call.overdue_at) && Date.parse(call.overdue_at) <= Date.now(),
      });
    }
  }

  // ---- server events -----------------------------------------------------------------

  const isOutgoing = (d) => state.outgoing && String(state.outgoing.callId) === String(d.call_id);
  offs.push(
    socket.on("call:recording", (d) => state.recording.set(String(d.call_id), d.state)),
    socket.on("call:ringing", (d) => {
      if (!isOutgoing(d)) return;
      Object.assign(state.outgoing, { window: d.window || state.outgoing.window, onDuty: normaliseOnDuty(d.on_duty), online: d.online });
      render();
    }),
    socket.on("call:overdue", (d) => {
      if (isOutgoing(d)) {
        state.outgoing.overdue = true;
        state.outgoing.reminded = d.reminded || [];
        render();
      }
      const inc = state.incoming.get(String(d.call_id));
      if (inc) {
        inc.overdue = true;
        render();
      }
    }),
    socket.on("call:declined", (d) => {
      if (!isOutgoing(d)) return;
      state.outgoing.declines.push({ by: d.by, reason: d.reason, remaining: d.remaining });
      render();
    }),
    socket.on("call:answered", (d) => {
      if (isOutgoing(d)) {
        const out = state.outgoing;
        enterCall({
          callId: d.call_id, role: "caller", homeSide: false, caseInfo: out.case,
          participants: d.participants || [me, d.by].filter(Boolean),
        });
      }
    }),
    socket.on("call:incoming", (d) => addIncoming(d)),
    socket.on("call:taken", (d) => {
      const by = d.by ? d.by.display_name || d.by.username : "同事";
      dropIncoming(d.call_id, `该来电已由 ${by} 接听。`);
    }),
    socket.on("call:missed", (d) => {
      if (isOutgoing(d)) endOutgoing("属地窗口超时未接听，本次请求已记为未接，并已报监督员核实。");
      dropIncoming(d.call_id, "一次来电无人接听，已记为未接。");
    }),
    socket.on("call:ended", (d) => {
      if (state.inCall === String(d.call_id)) return; // the call view handles it
      if (isOutgoing(d)) {
        const text = {
          declined: "属地窗口已拒绝本次协助请求。",
          cancelled: "协助请求已取消。",
          missed: "属地窗口超时未接听，本次请求已记为未接，并已报监督员核实。",
        }[d.reason] || `协助请求已结束（${END_REASONS[d.reason] || d.reason}）。`;
        const declines = state.outgoing.declines.map((x) => `${x.by ? x.by.display_name || x.by.username : ""}：${x.reason}`).join("；");
        endOutgoing(declines ? `${text}原因：${declines}` : text);
      }
      dropIncoming(d.call_id, d.reason === "cancelled" ? "对方已取消协助请求。" : null);
    }),
    socket.onConnectionState((s) => {
      if (s === "connected") {
        if (homeSide) setPresence(state.presence);
        syncActive();
      }
      render();
    }),
  );
  if (homeSide || expert) askNotificationPermission();
  if (socket.connectionState() === "connected") {
    if (homeSide) setPresence(state.presence);
    syncActive();
  }
  const timer = setInterval(() => {
    if (state.outgoing || state.incoming.size) render();
  }, 1000);

  // ---- rendering ---------------------------------------------------------------------

  function render() {
    renderStatus();
    renderIncoming();
    if (ui.request) renderRequest();
    if (ui.presenceBtns) {
      for (const [key, btn] of Object.entries(ui.presenceBtns)) {
        const on = state.presence === key;
        btn.setAttribute("aria-pressed", String(on));
        btn.className = `btn btn-huge ${on ? (key === "online" ? "btn-ok" : "btn-primary") : ""}`;
      }
      ui.presenceText.textContent = socket.connectionState() !== "connected"
        ? "未连接服务器：当前无法接到来电。"
        : state.presenceAck === "online" ? "服务器已确认：在线，可以接听来电。"
          : state.presenceAck === "away" ? "服务器已确认：暂离。来电不会在本页面响铃提醒，办公时间内请尽快恢复在线。"
            : state.presenceAck === "busy" ? "通话中。" : "正在向服务器报告在岗状态…";
    }
  }

  function renderStatus() {
    let text;
    let cls = "";
    const connected = socket.connectionState() === "connected";
    if (state.inCall) {
      text = "正在视频协助通话中";
      cls = "ok";
    } else if (state.incoming.size) {
      const first = [...state.incoming.values()][0];
      text = `来电！${first.caller?.hall || "申请地窗口"} 请求视频协助，请点击“接听”`;
      cls = "ringing";
    } else if (state.outgoing) {
      const out = state.outgoing;
      const waited = fmtClock((Date.now() - out.startedAt) / 1000);
      text = out.overdue
        ? `已短信提醒属地窗口人员，继续等待接听… 已等待 ${waited}`
        : `正在呼叫 ${windowName(out.window)}，已等待 ${waited}`;
      cls = out.overdue ? "alert" : "ringing";
    } else if (!connected) {
      text = "正在连接服务器…暂时无法发起或接听视频协助";
      cls = "alert";
    } else if (applicantSide && !state.selectedCase) {
      text = "请选择或新建一个案件，然后点击“请求协助”";
    } else if (applicantSide) {
      text = `已选择案件 ${state.selectedCase.case_no}，可以请求协助`;
    } else if (state.presence === "away") {
      text = "暂离：不会收到来电提醒";
      cls = "alert";
    } else {
      text = expert ? "在线，等待属地窗口的邀请" : "在线，等待来电";
      cls = "ok";
    }
    ui.status.textContent = text;
    ui.status.className = `status-line ${cls}`;
  }

  function renderIncoming() {
    if (!state.incoming.size) {
      replace(ui.incoming);
      return;
    }
    replace(ui.incoming, [...state.incoming.values()].map((d) => {
      const caller = d.caller || {};
      const waited = d.requested_at ? fmtClock((Date.now() - Date.parse(d.requested_at)) / 1000) : "";
      return h("section", { class: "card incoming", dataset: { callId: d.call_id } },
        h("h2", {}, d.role === "expert" ? "专家邀请：请加入视频协助" : "来电：申请地窗口请求视频协助"),
        h("div", { class: "big-facts" },
          h("div", {}, h("b", {}, "来自"), `${caller.hall || ""} ${caller.window ? caller.window.name : ""} · ${caller.display_name || caller.username || ""}`),
          d.window ? h("div", {}, h("b", {}, "呼叫窗口"), windowName(d.window)) : null,
          h("div", {}, h("b", {}, "已等待"), h("span", { class: "elapsed" }, waited))),
        caseSummary(d.case),
        d.overdue ? h("div", { class: "notice-box" }, "已超过应答时限，系统已短信提醒。请立即接听。") : null,
        h("div", { class: "btn-row" },
          h("button", { type: "button", class: "btn btn-ok btn-huge", id: `accept-${d.call_id}`, onclick: () => accept(d) }, "接听"),
          h("button", { type: "button", class: "btn btn-danger btn-huge", id: `decline-${d.call_id}`, onclick: () => decline(d) }, "拒绝")));
    }));
  }

  function renderRequest() {
    const out = state.outgoing;
    const c = out ? out.case : state.selectedCase;
    const parts = [h("h2", {}, "② 请求属地窗口协助")];
    if (c) parts.push(caseSummary(c));
    else parts.push(h("p", { class: "hint" }, "请先在左侧选择或新建案件。"));
    if (!out) {
      const connected = socket.connectionState() === "connected";
      parts.push(h("div", { class: "btn-row" }, h("button", {
        type: "button", class: "btn btn-primary btn-huge", id: "btn-request",
        disabled: !c || ui.requesting || !connected || Boolean(state.inCall), onclick: requestHelp,
      }, ui.requesting ? "正在请求…" : "请求协助")));
      if (c && c.home_window === null) parts.push(h("div", { class: "notice-box" }, "该案件的事项在所选属地没有对应的属地窗口，无法发起协助。"));
      if (!connected) parts.push(h("p", { class: "hint" }, "与服务器的实时连接未建立，暂时不能请求协助。"));
      if (ui.requestError) parts.push(h("div", { class: "error-box", role: "alert", id: "request-error" }, ui.requestError));
      if (state.lastEnded) parts.push(h("div", { class: "notice-box", id: "last-result" }, state.lastEnded));
    } else {
      const waited = fmtClock((Date.now() - out.startedAt) / 1000);
      parts.push(h("div", { id: "ringing", class: "ringing-box" },
        h("div", { class: "big-facts" },
          h("div", {}, h("b", {}, "呼叫窗口"), h("span", { id: "ring-window" }, windowName(out.window))),
          h("div", {}, h("b", {}, "已等待"), h("span", { class: "elapsed", id: "ring-elapsed" }, waited)),
          out.overdueAt && !out.overdue ? h("div", {}, h("b", {}, "应答时限"), `${fmtTime(out.overdueAt)} 前未接听将短信提醒`) : null,
          h("div", {}, h("b", {}, "在线人数"), out.online === null || out.online === undefined ? "—" : `${out.online} 人在线`)),
        h("h3", {}, "今日在岗人员"),
        out.onDuty.length
          ? h("ul", { id: "on-duty" }, out.onDuty.map((p) => h("li", {}, `${p.display_name || p.username} `,
            p.online ? h("span", { class: "tag tag-green" }, "在线") : h("span", { class: "tag" }, "不在线"))))
          : h("p", { class: "hint" }, "暂无在岗人员信息"),
        out.overdue ? h("div", { class: "notice-box", id: "sms-reminded" }, "已短信提醒",
          out.reminded.length ? `：${out.reminded.map((r) => `${r.display_name}（${r.mobile}）`).join("、")}` : "",
          "。请继续等待，或取消后稍后再试。") : null,
        out.declines.map((x) => h("div", { class: "error-box" }, `${x.by ? x.by.display_name || x.by.username : "属地人员"} 拒绝：${x.reason}`,
          x.remaining ? `（仍有 ${x.remaining} 人可接听，继续等待）` : "")),
        h("div", { class: "btn-row" }, h("button", { type: "button", class: "btn btn-danger btn-huge", id: "btn-cancel", onclick: cancelRequest }, "取消"))));
    }
    replace(ui.request, parts);
  }

  render();
  return {
    destroy() {
      clearInterval(timer);
      stopRinging();
      for (const off of offs) off();
    },
  };
}

function windowName(w) {
  if (!w) return "属地窗口";
  if (typeof w === "string") return w;
  return [w.hall, w.name].filter(Boolean).join(" · ") || w.code || "属地窗口";
}

function normaliseOnDuty(list) {
  return (list || []).map((p) => ({ username: p.username, display_name: p.display_name, online: Boolean(p.online) }));
}

function membersOf(call, fallback) {
  const members = (call.members || []).filter((m) => !m.left_at && !m.declined_at);
  return members.length ? members : fallback.filter(Boolean);
}

function officeHoursText(w) {
  // GET /api/me may carry the window's hours today: office_hours_today [{opens, closes}], open_now
  if (Array.isArray(w.office_hours_today)) {
    if (!w.office_hours_today.length) return "今日不办公";
    const spans = w.office_hours_today.map((s) => `${s.opens}–${s.closes}`).join("，");
    return `${spans}${w.open_now === undefined ? "" : w.open_now ? "（现在是办公时间）" : "（现在不在办公时间）"}`;
  }
  return "以大厅公布的办公时间为准";
}

