// The supervisor's page (R5, R12): the live board of windows, misses to verify (确认 / 免责
// with a reason), escalations addressed to this agency, the monthly report with exports, and
// the recordings of calls in this jurisdiction (the auditor's view, R7).
import { get, post, query } from "./api.js";
import { dialog, display, fmtDateTime, fmtTime, h, replace, table, thisMonth, toast } from "./dom.js";
import { errorText } from "./messages.js";
import { listOf, monthInput, pick } from "./generic.js";

const BOARD_EVERY_MS = 5000;

export function mount(root, me) {
  let month = thisMonth();
  let tab = "board";
  let boardTimer = null;
  let recordings = null; // the mounted recordings view: {destroy()}
  const status = h("div", { id: "status-line", class: "status-line", role: "status", "aria-live": "polite" });
  const body = h("div", { id: "tab-body" });
  const tabs = { board: "实时看板", misses: "未接核实", escalations: "升级通报", report: "月度报表", absences: "缺勤登记", recordings: "录像调阅" };
  const tabBar = h("div", { class: "tabs", role: "tablist" }, Object.entries(tabs).map(([key, title]) =>
    h("button", { type: "button", class: "btn", role: "tab", id: `tab-${key}`, onclick: () => show(key) }, title)));
  replace(root, status, h("h1", {}, `${me.agency ? me.agency.name : ""} 监督`), tabBar, body);

  function say(text, cls = "") {
    status.textContent = text;
    status.className = `status-line ${cls}`;
  }

  function show(key) {
    tab = key;
    clearInterval(boardTimer);
    if (recordings) {
      recordings.destroy();
      recordings = null;
    }
    for (const b of tabBar.children) b.setAttribute("aria-selected", String(b.id === `tab-${key}`));
    replace(body, h("p", { class: "hint" }, "正在加载…"));
    if (key === "board") {
      loadBoard();
      boardTimer = setInterval(loadBoard, BOARD_EVERY_MS);
    } else if (key === "misses") loadMisses();
    else if (key === "escalations") loadEscalations();
    else if (key === "absences") loadAbsences();
    else if (key === "recordings") loadRecordings();
    else loadReport();
  }

  const monthPicker = () => h("div", { class: "inline" }, h("div", {},
    h("label", { for: "month" }, "月份"), monthInput("month", month, (v) => { month = v; show(tab); })));

  // ---- live board --------------------------------------------------------------------

  async function loadBoard() {
    let data;
    try {
      data = await get("/api/board");
    } catch (err) {
      say(`看板暂时无法加载：${errorText(err.error)}（每 5 秒重试）`, "alert");
      return;
    }
    if (tab !== "board") return;
    const windows = listOf(data, "windows");
    const ringing = windows.reduce((n, w) => n + (w.ringing || 0), 0);
    const inCall = windows.reduce((n, w) => n + (w.in_call || 0), 0);
    const unstaffed = windows.filter((w) => w.open_now && !w.staffed).length;
    say(`${windows.length} 个窗口 · ${ringing} 个来电振铃中 · ${inCall} 个通话进行中 · ${unstaffed} 个窗口办公时间无人在线 · 更新于 ${fmtTime(new Date().toISOString())}`,
      unstaffed || ringing ? "ringing" : "ok");
    replace(body, table(windows, [
      { title: "窗口", render: (w) => `${w.hall || ""} · ${w.name}` },
      { title: "机构", render: (w) => display(w.agency) },
      { title: "办公时间", render: (w) => (w.open_now ? h("span", { class: "tag tag-blue" }, "办公中") : h("span", { class: "tag" }, "非办公时间")) },
      { title: "在岗", render: (w) => (w.staffed ? h("span", { class: "tag tag-green" }, "有人在线")
        : h("span", { class: w.open_now ? "tag tag-red" : "tag" }, "无人在线")) },
      { title: "在岗人员", render: (w) => (w.staff || w.on_duty || []).map((p) => h("div", {}, `${p.display_name || p.username} `,
        h("span", { class: `tag ${presenceClass(p.presence)}` }, presenceText(p.presence)))) },
      { title: "振铃中", render: (w) => (w.ringing ? h("span", { class: "tag tag-amber" }, `${w.ringing} 个${w.overdue ? `（${w.overdue} 个已超时）` : ""}`) : "0") },
      { title: "通话中", render: (w) => (w.in_call ? h("span", { class: "tag tag-green" }, `${w.in_call} 个`) : "0") },
    ], { empty: "辖区内没有窗口。" }));
  }

  // ---- misses ------------------------------------------------------------------------

  async function loadMisses() {
    let misses;
    let data;
    try {
      data = await get(`/api/misses${query({ month })}`);
      misses = listOf(data, "misses");
    } catch (err) {
      say(`未接记录加载失败：${errorText(err.error)}`, "alert");
      replace(body, monthPicker());
      return;
    }
    const open = misses.filter((m) => !verdictOf(m));
    say(open.length ? `${month} 有 ${open.length} 条未接记录等待核实` : `${month} 的未接记录均已核实`, open.length ? "ringing" : "ok");
    const atRisk = listOf(data, "staff").filter((p) => p.confirmed > 0);
    replace(body, monthPicker(),
      atRisk.length ? h("div", { class: "card", id: "miss-counts" }, h("h3", {}, `本月确认未接次数（超过 ${data.limit ?? 3} 次将移交上级）`),
        h("ul", {}, atRisk.map((p) => h("li", {}, `${p.display_name || p.username}：${p.confirmed} 次 `,
          p.standing === "escalated" || p.escalation ? h("span", { class: "tag tag-red" }, "已移交上级")
            : p.at_risk ? h("span", { class: "tag tag-amber" }, "接近上限") : null)))) : null,
      h("div", { id: "misses" }, table(misses, [
        { title: "呼叫时间", render: (m) => fmtDateTime(pick(m, "call_requested_at", "requested_at", "occurred_at", "at")) },
        { title: "责任人", render: (m) => display(pick(m, "staff", "person", "username")) },
        { title: "窗口", render: (m) => display(pick(m, "window", "window_name")) },
        { title: "案件", render: (m) => display(pick(m, "case_no", "case.case_no")) },
        { title: "状态", render: (m) => verdictTag(verdictOf(m)) },
        { title: "核实", render: (m) => {
          const last = lastVerdict(m);
          const buttons = h("div", { class: "btn-row", style: "margin:0" },
            h("button", { type: "button", class: "btn btn-danger", dataset: { missId: m.id }, onclick: () => verify(m, "confirmed") }, "确认"),
            h("button", { type: "button", class: "btn btn-ok", dataset: { missId: m.id }, onclick: () => verify(m, "excused") }, "免责"));
          if (!verdictOf(m)) return buttons;
          return h("div", {}, last ? `${display(last.by)} ${fmtDateTime(last.at)}：${last.reason || ""}` : "");
        } },
      ], { empty: "本月没有未接记录。" })));
  }

  async function verify(miss, verdict) {
    const reason = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const text = h("textarea", { id: "verify-reason", name: "reason", maxlength: 200, required: true });
      const form = h("form", { id: "verify-form", novalidate: true },
        h("h2", {}, verdict === "confirmed" ? "确认未接（计入当月未接次数）" : "免责（不计入未接次数）"),
        h("p", {}, `${display(pick(miss, "staff", "person", "username"))} · ${fmtDateTime(pick(miss, "requested_at", "at", "created_at"))}`),
        h("label", { for: "verify-reason" }, verdict === "confirmed" ? "确认理由" : "免责理由（如请假、培训、系统故障）"),
        text, error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: verdict === "confirmed" ? "btn btn-danger" : "btn btn-ok" }, verdict === "confirmed" ? "确认" : "免责"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "返回")));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (!text.value.trim()) {
          error.textContent = "请填写理由。";
          error.hidden = false;
          return;
        }
        close(text.value.trim());
      });
      return form;
    });
    if (!reason) return;
    try {
      await post(`/api/misses/${miss.id}/verify`, { verdict, reason });
      toast(verdict === "confirmed" ? "已确认该未接记录。" : "已免责。");
    } catch (err) {
      toast(errorText(err.error), { error: true });
    }
    loadMisses();
  }

  // ---- escalations -------------------------------------------------------------------

  async function loadEscalations() {
    let rows;
    try {
      rows = listOf(await get(`/api/escalations${query({ month })}`), "escalations");
    } catch (err) {
      say(`升级通报加载失败：${errorText(err.error)}`, "alert");
      replace(body, monthPicker());
      return;
    }
    say(rows.length ? `${month} 有 ${rows.length} 条升级通报（当月确认未接超过 3 次）` : `${month} 没有升级通报`, rows.length ? "alert" : "ok");
    replace(body, monthPicker(), h("div", { id: "escalations" }, table(rows, [
      { title: "月份", key: "month" },
      { title: "人员", render: (e) => display(e.staff) },
      { title: "确认未接次数", render: (e) => display(pick(e, "confirmed_count", "count")) },
      { title: "所在机构", render: (e) => display(e.from_agency) },
      { title: "移交至", render: (e) => display(e.to_agency) },
      { title: "状态", render: (e) => display(e.state) },
      { title: "时间", render: (e) => fmtDateTime(pick(e, "created_at")) },
    ], { empty: "本月没有升级通报。" })));
  }

  // ---- monthly report ----------------------------------------------------------------

  // Staff on leave, in training or on another duty are not on duty: not rung, not reminded,
  // not charged with misses for that time.
  async function loadAbsences() {
    let rows;
    try {
      rows = listOf(await get("/api/absences"), "absences");
    } catch (err) {
      replace(body, h("div", { class: "error-box" }, errorText(err.error)));
      return;
    }
    const error = h("div", { class: "error-box", role: "alert", hidden: true });
    const local = (d) => {
      const pad = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    };
    const now = new Date();
    const form = h("form", { id: "absence-form", class: "inline" },
      h("div", {}, h("label", { for: "absence-username" }, "人员账号"), h("input", { id: "absence-username", name: "username", required: true, placeholder: "如 fq.h2" })),
      h("div", {}, h("label", { for: "absence-from" }, "开始"), h("input", { id: "absence-from", name: "from", type: "datetime-local", required: true, value: local(now) })),
      h("div", {}, h("label", { for: "absence-to" }, "结束"), h("input", { id: "absence-to", name: "to", type: "datetime-local", required: true })),
      h("div", {}, h("label", { for: "absence-reason" }, "事由"), h("input", { id: "absence-reason", name: "reason", required: true, placeholder: "年休假、培训、其他公务" })),
      h("button", { type: "submit", class: "btn btn-primary" }, "登记缺勤"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const iso = (value) => new Date(value).toISOString();
      try {
        await post("/api/absences", {
          username: f.username.value.trim(), starts_at: iso(f.from.value), ends_at: iso(f.to.value),
          reason: f.reason.value.trim(),
        });
        toast("已登记：该人员在此期间不在岗，不会被呼叫、提醒或记未接。");
        loadAbsences();
      } catch (err) {
        error.textContent = errorText(err.error);
        error.hidden = false;
      }
    });
    replace(body, h("p", { class: "hint" }, "登记后，该人员在缺勤期间不算在岗：不响铃、不发短信提醒、不记未接。"), form, error,
      table(rows, [
        { title: "人员", render: (a) => `${a.display_name}（${a.username}）` },
        { title: "开始", render: (a) => fmtDateTime(a.starts_at) },
        { title: "结束", render: (a) => fmtDateTime(a.ends_at) },
        { title: "事由", key: "reason" },
        { title: "操作", render: (a) => h("button", { type: "button", class: "btn", onclick: async () => {
          try { await post(`/api/absences/${a.id}/end`); toast("已结束该缺勤。"); loadAbsences(); }
          catch (err) { toast(errorText(err.error), { error: true }); }
        } }, "提前结束") },
      ], { empty: "当前没有登记的缺勤。" }));
    say(`${rows.length} 条缺勤登记`);
  }

  async function loadReport() {
    const base = `/api/reports/monthly${query({ month })}`;
    const exports = h("div", { class: "btn-row" },
      h("a", { class: "btn", id: "export-csv", href: `${base}&format=csv`, download: `通办月报-${month}.csv` }, "导出 CSV"),
      h("a", { class: "btn", id: "export-xlsx", href: `${base}&format=xlsx`, download: `通办月报-${month}.xlsx` }, "导出 Excel"));
    let data;
    try {
      data = await get(base);
    } catch (err) {
      say(`月度报表加载失败：${errorText(err.error)}`, "alert");
      replace(body, monthPicker(), exports);
      return;
    }
    say(`${month} 月度报表：请求量、接通率、应答时间、未接、拒绝、评价`, "ok");
    const rows = listOf(data, "rows", "windows", "lines");
    replace(body, monthPicker(), exports, h("div", { id: "report" }, reportTable(rows)));
  }

  show("board");
  async function loadRecordings() {
    const holder = h("div", { id: "supervisor-recordings" });
    const page = await import("./auditor.js");
    if (tab !== "recordings") return;
    replace(body, holder);
    recordings = page.mount(holder, me, { embedded: true });
  }

  return {
    destroy() {
      clearInterval(boardTimer);
      if (recordings) recordings.destroy();
    },
  };
}

function verdictOf(m) {
  const status = pick(m, "status", "verdict", "state");
  return status && status !== "pending" && status !== "open" ? status : undefined;
}

function lastVerdict(m) {
  const list = m.verdicts || [];
  return list.length ? list[list.length - 1] : null;
}

const LEVEL_INDENT = { total: 0, agency: 1, hall: 2, window: 3, staff: 4 };

function reportTable(rows) {
  const name = (r) => {
    if (r.level === "total") return `合计（${display(r.agency)}）`;
    if (r.level === "staff") return display(r.staff);
    if (r.level === "window") return display(r.window);
    if (r.level === "hall") return display(r.hall);
    return display(r.agency);
  };
  const num = (v, suffix = "") => (v === null || v === undefined ? "—" : `${v}${suffix}`);
  return table(rows, [
    { title: "单位 / 人员", render: (r) => h("span", { style: `padding-left:${(LEVEL_INDENT[r.level] || 0) * 1.1}rem;${r.level === "total" ? "font-weight:bold" : ""}` }, name(r)) },
    { title: "请求", render: (r) => num(r.requests) },
    { title: "接听", render: (r) => num(r.answered) },
    { title: "接通率", render: (r) => (r.answer_rate === null || r.answer_rate === undefined ? "—" : `${(r.answer_rate * 100).toFixed(1)}%`) },
    { title: "应答中位/90%(秒)", render: (r) => `${num(r.answer_p50_s)} / ${num(r.answer_p90_s)}` },
    { title: "超时后接听", render: (r) => num(r.answered_late) },
    { title: "未接 待核实/确认/免责", render: (r) => (r.misses && typeof r.misses === "object"
      ? `${r.misses.pending ?? 0} / ${r.misses.confirmed ?? 0} / ${r.misses.excused ?? 0}` : num(r.misses)) },
    { title: "拒绝", render: (r) => num(r.declines) },
    { title: "不必要请求", render: (r) => num(r.unnecessary) },
    { title: "平均评分", render: (r) => (r.rating_avg ? `${r.rating_avg}（${r.ratings} 条）` : "—") },
    { title: "办公时间离线(分钟)", render: (r) => num(r.offline_minutes) },
  ], { empty: "本月没有数据。", rowAttrs: (r) => ({ dataset: { level: r.level || "" } }) });
}

function verdictTag(v) {
  if (v === "confirmed") return h("span", { class: "tag tag-red" }, "已确认");
  if (v === "excused") return h("span", { class: "tag tag-green" }, "已免责");
  return h("span", { class: "tag tag-amber" }, "待核实");
}

function presenceText(p) {
  return { online: "在线", busy: "通话中", away: "暂离", offline: "离线" }[p] || p || "离线";
}

function presenceClass(p) {
  return { online: "tag-green", busy: "tag-blue", away: "tag-amber" }[p] || "";
}
