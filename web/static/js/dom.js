// Small DOM helpers: build elements without innerHTML (no injection of server text).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

const TZ = "Asia/Shanghai";
const dateTime = new Intl.DateTimeFormat("zh-CN", {
  timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const dateOnly = new Intl.DateTimeFormat("zh-CN", {
  timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat("zh-CN", {
  timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false,
});

export function fmtDateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateOnly.format(d);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : timeOnly.format(d);
}

/** 75 -> "1分15秒"; 3700 -> "1小时1分40秒". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  let s = Math.max(0, Math.round(seconds));
  const hrs = Math.floor(s / 3600);
  s -= hrs * 3600;
  const min = Math.floor(s / 60);
  s -= min * 60;
  return `${hrs ? hrs + "小时" : ""}${hrs || min ? min + "分" : ""}${s}秒`;
}

/** "mm:ss" for a running clock. */
export function fmtClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${mm}:${ss}`;
}

/** The current month in Asia/Shanghai as "YYYY-MM". */
export function thisMonth() {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit" })
    .formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}`;
}

export function toast(message, { error = false, ms = 6000 } = {}) {
  const box = $("#toasts");
  if (!box) return;
  const el = h("div", { class: error ? "toast error" : "toast", role: error ? "alert" : "status" }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** A modal dialog; resolves with what `build` passes to `close(value)`, or null when dismissed. */
export function dialog(build) {
  return new Promise((resolve) => {
    const dlg = h("dialog");
    let settled = false;
    const close = (value) => {
      if (settled) return;
      settled = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    dlg.addEventListener("cancel", (ev) => { ev.preventDefault(); close(null); });
    append(dlg, [build(close)]);
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A table from rows and column specs [{key, title, render?}]. */
export function table(rows, columns, { empty = "暂无记录", rowAttrs } = {}) {
  if (!rows || rows.length === 0) return h("p", { class: "hint" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
      h("tbody", {}, rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {},
        columns.map((c) => h("td", {}, c.render ? c.render(row) : display(row[c.key]))))))));
}

export function display(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "是" : "否";
  if (typeof value === "object") {
    if ("display_name" in value) return value.display_name;
    if ("name" in value) return value.name;
    return JSON.stringify(value);
  }
  return String(value);
}
