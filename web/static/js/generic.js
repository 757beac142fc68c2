// Rendering records whose exact fields may grow: known keys get Chinese headings, the rest
// show as they are. Used by the supervisor, auditor and admin pages.
import { display, fmtDateTime, h, table } from "./dom.js";

export const HEADINGS = {
  id: "编号", month: "月份", window: "窗口", window_name: "窗口", window_code: "窗口代码", hall: "大厅",
  agency: "机构", agency_name: "机构", staff: "人员", username: "账号", display_name: "姓名",
  case_no: "案件编号", call_id: "通话编号", requested: "请求数", requests: "请求数", answered: "接听数",
  answer_rate: "接通率", missed: "未接", misses: "未接", confirmed_misses: "确认未接", declined: "拒绝",
  declines: "拒绝数", cancelled: "取消", unnecessary: "不必要请求", avg_answer_s: "平均应答(秒)",
  mean_answer_s: "平均应答(秒)", median_answer_s: "应答中位数(秒)", avg_rating: "平均评分", rating: "评分",
  offline_s: "办公时间离线(秒)", count: "次数", state: "状态", verdict: "核实结论", reason: "原因",
  created_at: "时间", at: "时间", requested_at: "请求时间", verified_at: "核实时间", verified_by: "核实人",
  to_agency: "通报机构", from_agency: "来自机构", mobile: "手机号", phone: "手机号", error: "错误",
  attempts: "尝试次数", template: "模板", last_error: "最后错误", kind: "类型", role: "角色",
  next_attempt_at: "下次重试", sent_at: "发送时间", delivered_at: "送达时间",
};

const TIME_KEYS = /(_at|^at)$/;

export function genericTable(rows, { skip = [], empty } = {}) {
  if (!rows || !rows.length) return table([], [], { empty });
  const keys = [];
  for (const row of rows.slice(0, 20)) {
    for (const key of Object.keys(row)) if (!keys.includes(key) && !skip.includes(key)) keys.push(key);
  }
  return table(rows, keys.map((key) => ({
    title: HEADINGS[key] || key,
    render: (row) => (TIME_KEYS.test(key) ? fmtDateTime(row[key]) : display(row[key])),
  })), { empty });
}

/** The first of several possible field names that is present. */
export function pick(obj, ...keys) {
  for (const key of keys) {
    const value = key.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
    if (value !== undefined && value !== null && value !== "") return value;
  }
  return undefined;
}

/** The list inside an answer ({misses: [...]}, {items: [...]} or a bare array). */
export function listOf(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const name of [...names, "items", "rows", "results"]) if (data && Array.isArray(data[name])) return data[name];
  return [];
}

export function monthInput(id, value, onChange) {
  const input = h("input", { type: "month", id, name: "month", value, style: "max-width:12rem" });
  input.addEventListener("change", () => onChange(input.value));
  return input;
}
