// Error codes of docs/protocol.md in the words a clerk reads. The server's own message
// (already Chinese) is the fallback for codes not listed here.
import { fmtDateTime, fmtTime } from "./dom.js";

const TEXT = {
  bad_credentials: "用户名或密码错误，请重新输入。",
  account_locked: "连续登录失败次数过多，账号已被锁定。",
  session_replaced: "该账号已在其他地方登录，本页面已退出。如非本人操作，请立即修改密码。",
  session_expired: "登录已超时，请重新登录。",
  session_revoked: "登录已失效，请重新登录。",
  unauthenticated: "请先登录。",
  forbidden: "没有权限进行此操作。",
  bad_origin: "请求来源不被允许，请从本系统页面操作。",
  not_found: "未找到相应的记录。",
  invalid_json: "请求内容有误，请刷新页面后重试。",
  too_large: "提交的内容过大。",
  internal_error: "服务器内部错误，请稍后重试。",
  wrong_password: "当前密码不正确。",
  weak_password: "新密码至少 10 位，并包含大写字母、小写字母、数字、符号中的至少三类，且不能包含用户名。",
  username_taken: "该用户名已被使用。",
  bad_role: "角色无效。",
  id_number_length: "身份证号码应为 18 位。",
  id_number_format: "身份证号码前 17 位应为数字，最后一位为数字或 X。",
  id_number_birth_date: "身份证号码中的出生日期无效。",
  id_number_checksum: "身份证号码校验位不正确，请核对后重新输入。",
  matter_not_found: "未找到该事项。",
  unknown_region: "未知的属地区划。",
  not_applicant_staff: "只有申请地通办窗口人员可以登记案件、发起协助。",
  no_home_window: "该事项在所选属地没有对应的属地通办窗口，无法发起协助。",
  outside_office_hours: "属地窗口当前不在办公时间。",
  case_not_visible: "无权查看该案件。",
  case_not_found: "案件不存在。",
  call_already_active: "该案件已有正在进行的协助请求。",
  no_staff_on_duty: "属地窗口当前没有在岗人员。",
  call_taken: "该来电已由其他同事接听。",
  invalid_state: "当前状态下不能进行此操作（通话可能已结束）。",
  reason_required: "请填写拒绝的原因。",
  limit_reached: "服务器繁忙，请稍后再试。",
  timeout: "服务器没有及时响应，请检查网络后重试。",
  offline: "与服务器的实时连接已断开，正在重连，请稍候。",
  network: "无法连接服务器，请检查网络。",
};

/** A Chinese sentence for an error object {code, message, ...details}. */
export function errorText(error) {
  if (!error) return "操作失败。";
  const code = error.code || "";
  let text = TEXT[code] || error.message || `操作失败（${code || "未知错误"}）。`;
  if (code === "outside_office_hours" && error.next_opening) {
    text += `下次开放时间：${fmtDateTime(error.next_opening)}。`;
  }
  if (code === "account_locked" && error.locked_until) {
    text += `请在 ${fmtTime(error.locked_until)} 之后再试，或联系管理员解锁。`;
  }
  if (code === "invalid_input" && Array.isArray(error.fields) && error.fields.length) {
    text = `${error.message || "输入有误"}：${error.fields.map((f) => f.field).join("、")}`;
  }
  return text;
}

export const ROLE_NAMES = {
  staff: "窗口人员",
  expert: "业务专家",
  supervisor: "监督员",
  auditor: "审计员",
  admin: "管理员",
};

export const WINDOW_KINDS = { applicant: "申请地窗口", home: "属地窗口", both: "申请地/属地窗口" };

export const REVOKED_REASONS = {
  replaced: "该账号已在其他地方登录，本页面已退出。如非本人操作，请立即修改密码。",
  disabled: "该账号已被管理员停用。",
  password_reset: "密码已被管理员重置，请使用新密码登录。",
  logout: "已退出登录。",
};

export const END_REASONS = {
  hangup: "通话已挂断",
  declined: "属地窗口已拒绝",
  cancelled: "已取消",
  missed: "无人接听，已记为未接",
  connection_lost: "连接中断，通话已结束",
  media_failure: "音视频故障，通话已结束",
};

export const CALL_STATES = {
  requested: "已发起",
  ringing: "振铃中",
  overdue: "超时未接（已短信提醒）",
  answered: "通话中",
  declined: "已拒绝",
  cancelled: "已取消",
  missed: "未接",
  ended: "已结束",
};
