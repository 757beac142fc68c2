// The supervisor's page (R5, R12): the live board of windows, misses to verify (确认 / 免责
// with a reason), escalations addressed to this agency, the monthly report with exports.
import { get, post, query } from "./api.js";
import { dialog, display, fmtDateTime, fmtTime, h, replace, table, thisMonth, toast } from "./dom.js";
import { errorText } from "./messages.js";
import { genericTable, listOf, monthInput, pick } from "./generic.js";

const BOARD_EVERY_MS = 5000;

export function mount(root, me) {
  let month = thisMonth();
  let tab = "board";
  let boardTimer = null;
  const status = h("div", { id: "status-line", class: "status-line", role: "status", "aria-live": "polite" });
  const body = h("div", { id: "tab-body" });
  const tabs = { board: "实时看板", misses: "未接核实", escalations: "升级通报", report: "月度报表" };
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
    for (const b of tabBar.children) b.setAttribute("aria-selected", String(b.id === `tab-${key}`));
    replace(body, h("p", { class: "hint" }, "正在加载…"));
    if (key === "board") {
      loadBoard();
      boardTimer = setInterval(loadBoard, BOARD_EVERY_MS);
    } else if (key === "misses") loadMisses();
    else if (key === "escalations") loadEscalations();
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
      { title: "在岗人员", render: (w) => (w.on_duty || []).map((p) => h("div", {}, `${p.display_name || p.username} `,
        h("span", { class: `tag ${presenceClass(p.presence)}` }, presenceText(p.presence)))) },
      { title: "振铃中", render: (w) => (w.ringing ? h("span", { class: "tag tag-amber" }, `${w.ringing} 个`) : "0") },
      { title: "通话中", render: (w) => (w.in_call ? h("span", { class: "tag tag-green" }, `${w.in_call} 个`) : "0") },
    ], { empty: "辖区内没有窗口。" }));
  }

  // ---- misses ------------------------------------------------------------------------

  async function loadMisses() {
    let misses;
    try {
      misses = listOf(await get(`/api/misses${query({ month })}`), "misses");
    } catch (err) {
      say(`未接记录加载失败：${errorText(err.error)}`, "alert");
      replace(body, monthPicker());
      return;
    }
    const open = misses.filter((m) => !verdictOf(m));
    say(open.length ? `${month} 有 ${open.length} 条未接记录等待核实` : `${month} 的未接记录均已核实`, open.length ? "ringing" : "ok");
    replace(body, monthPicker(), h("div", { id: "misses" }, table(misses, [
      { title: "时间", render: (m) => fmtDateTime(pick(m, "requested_at", "at", "created_at", "call.requested_at")) },
      { title: "人员", render: (m) => display(pick(m, "staff", "person", "account", "username")) },
      { title: "窗口", render: (m) => display(pick(m, "window", "window_name")) },
      { title: "案件", render: (m) => display(pick(m, "case_no", "case.case_no", "call.case.case_no")) },
      { title: "状态", render: (m) => verdictTag(verdictOf(m)) },
      { title: "原因", render: (m) => display(pick(m, "reason", "verdict_reason")) },
      { title: "核实", render: (m) => (verdictOf(m)
        ? `${display(pick(m, "verified_by"))} ${fmtDateTime(pick(m, "verified_at"))}`
        : h("div", { class: "btn-row", style: "margin:0" },
          h("button", { type: "button", class: "btn btn-danger", dataset: { missId: m.id }, onclick: () => verify(m, "confirmed") }, "确认"),
          h("button", { type: "button", class: "btn btn-ok", dataset: { missId: m.id }, onclick: () => verify(m, "excused") }, "免责"))) },
    ], { empty: "本月没有未接记录。" })));
  }

  async function verify(miss, verdict) {
    const reason = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const text = h("textarea", { id: "verify-reason", name: "reason", maxlength: 200, required: true });
      const form = h("form", { id: "verify-form" },
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
    replace(body, monthPicker(), h("div", { id: "escalations" }, genericTable(rows, { empty: "本月没有升级通报。" })));
  }

  // ---- monthly report ----------------------------------------------------------------

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
    const totals = data && !Array.isArray(data) ? data.totals || data.summary : null;
    replace(body, monthPicker(), exports,
      totals ? h("div", { class: "card" }, h("h3", {}, "合计"), genericTable([totals])) : null,
      h("div", { id: "report" }, genericTable(rows, { empty: "本月没有数据。" })));
  }

  show("board");
  return { destroy: () => clearInterval(boardTimer) };
}

function verdictOf(m) {
  return pick(m, "verdict", "verification.verdict") || (m.state && m.state !== "pending" && m.state !== "open" ? m.state : undefined);
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
