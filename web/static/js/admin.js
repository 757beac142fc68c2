// The provincial administrator's page (R8): accounts (create, disable, reset a password),
// SMS that failed and need a person, and the server's warnings (e.g. next year's calendar).
import { get, patch, post } from "./api.js";
import { dialog, display, h, replace, table, toast } from "./dom.js";
import { errorText, ROLE_NAMES } from "./messages.js";
import { genericTable, listOf } from "./generic.js";
import { mountDirectory } from "./admin_directory.js";

export function mount(root) {
  const status = h("div", { id: "status-line", class: "status-line", role: "status", "aria-live": "polite" }, "正在检查系统状态…");
  const warnings = h("section", { id: "warnings", class: "card" }, h("h2", {}, "系统提醒"));
  const sms = h("section", { id: "sms-failures", class: "card" }, h("h2", {}, "发送失败的短信"));
  const accounts = h("section", { id: "accounts", class: "card" }, h("h2", {}, "账号管理"));
  const directory = h("section", { id: "directory", class: "card" }, h("h2", {}, "大厅、窗口与事项"));
  const calendar = h("section", { id: "calendar", class: "card" }, h("h2", {}, "工作日历"));
  replace(root, status, h("h1", {}, "系统管理"), warnings, sms, accounts, directory, calendar);
  mountDirectory(directory, calendar);
  const problems = { warnings: 0, sms: 0 };

  function summarise() {
    const parts = [];
    if (problems.warnings) parts.push(`${problems.warnings} 条系统提醒`);
    if (problems.sms) parts.push(`${problems.sms} 条短信发送失败`);
    status.textContent = parts.length ? `需要处理：${parts.join("，")}` : "系统运行正常，没有需要处理的事项";
    status.className = `status-line ${parts.length ? "alert" : "ok"}`;
  }

  async function loadHealth() {
    try {
      const response = await fetch("/healthz", { headers: { Accept: "application/json" } });
      const data = await response.json();
      const list = data.warnings || [];
      const failed = Object.entries(data.checks || {}).filter(([, v]) => v !== "ok");
      problems.warnings = list.length + failed.length;
      replace(warnings, h("h2", {}, "系统提醒"),
        list.length || failed.length
          ? h("ul", {}, list.map((w) => h("li", { class: "notice-box" }, typeof w === "string" ? w : w.message || JSON.stringify(w))),
            failed.map(([k, v]) => h("li", { class: "error-box" }, `${k}：${v}`)))
          : h("p", { class: "hint" }, "没有提醒（工作日日历、数据库等均正常）。"));
    } catch (err) {
      replace(warnings, h("h2", {}, "系统提醒"), h("div", { class: "error-box" }, "无法读取系统状态。"));
      problems.warnings = 1;
    }
    summarise();
  }

  async function loadSms() {
    try {
      const rows = listOf(await get("/api/admin/sms?state=failed"), "entries", "messages");
      problems.sms = rows.length;
      replace(sms, h("h2", {}, "发送失败的短信"),
        h("p", { class: "hint" }, "签名、模板、号码或余额错误不会自动重试，请处理后联系相关人员。"),
        genericTable(rows, { skip: ["body", "params", "account_id", "dedupe_key", "biz_id"], empty: "没有发送失败的短信。" }));
    } catch (err) {
      replace(sms, h("h2", {}, "发送失败的短信"), h("div", { class: "error-box" }, `无法加载：${errorText(err.error)}`));
    }
    summarise();
  }

  async function loadAccounts() {
    let list;
    try {
      list = listOf(await get("/api/admin/accounts"), "accounts");
    } catch (err) {
      replace(accounts, h("h2", {}, "账号管理"), h("div", { class: "error-box" }, errorText(err.error)));
      return;
    }
    replace(accounts, h("h2", {}, "账号管理"),
      h("div", { class: "btn-row" }, h("button", { type: "button", class: "btn btn-primary", id: "btn-new-account", onclick: createAccount }, "新建账号")),
      table(list, [
        { title: "账号", key: "username" },
        { title: "姓名", key: "display_name" },
        { title: "角色", render: (a) => ROLE_NAMES[a.role] || a.role },
        { title: "机构", render: (a) => display(a.agency) },
        { title: "窗口 / 部门", render: (a) => (a.windows || []).map((w) => `${w.hall} · ${w.name}`).join("；") || a.department || "—" },
        { title: "手机", key: "mobile" },
        { title: "状态", render: (a) => (a.disabled ? h("span", { class: "tag tag-red" }, "已停用") : h("span", { class: "tag tag-green" }, "正常")) },
        { title: "操作", render: (a) => h("div", { class: "btn-row", style: "margin:0" },
          h("button", { type: "button", class: "btn", onclick: () => setDisabled(a, !a.disabled) }, a.disabled ? "启用" : "停用"),
          h("button", { type: "button", class: "btn", onclick: () => resetPassword(a) }, "重置密码")) },
      ]));
  }

  async function setDisabled(account, disabled) {
    try {
      await patch(`/api/admin/accounts/${encodeURIComponent(account.username)}`, { disabled });
      toast(disabled ? `已停用 ${account.username}，其登录已被终止。` : `已启用 ${account.username}。`);
    } catch (err) {
      toast(errorText(err.error), { error: true });
    }
    loadAccounts();
  }

  async function resetPassword(account) {
    await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const form = h("form", { id: "reset-form" },
        h("h2", {}, `重置 ${account.username} 的密码`),
        h("p", { class: "hint" }, "重置后该账号的登录立即失效。请通过安全渠道把新密码告知本人，并提醒其登录后修改。"),
        h("label", { for: "reset-password" }, "新密码"),
        h("input", { id: "reset-password", name: "password", type: "password", autocomplete: "new-password", required: true }),
        error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-primary" }, "重置"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          await patch(`/api/admin/accounts/${encodeURIComponent(account.username)}`, { password: form.elements.password.value });
          toast("密码已重置。");
          close(true);
        } catch (err) {
          error.textContent = errorText(err.error);
          error.hidden = false;
        }
      });
      return form;
    });
  }

  async function createAccount() {
    const created = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const input = (name, title, attrs = {}) => [h("label", { for: `new-${name}` }, title), h("input", { id: `new-${name}`, name, ...attrs })];
      const form = h("form", { id: "account-form" },
        h("h2", {}, "新建账号"),
        input("username", "账号", { required: true }),
        input("display_name", "姓名"),
        h("label", { for: "new-role" }, "角色"),
        h("select", { id: "new-role", name: "role" }, Object.entries(ROLE_NAMES).map(([k, v]) => h("option", { value: k }, v))),
        input("agency_region", "所属机构区划代码", { required: true, placeholder: "如 410727" }),
        input("windows", "窗口代码（窗口人员，多个用逗号分隔）", { placeholder: "如 FQ-ZJ-01" }),
        input("department", "业务部门（专家）"),
        input("mobile", "手机号码（接收短信提醒）", { inputmode: "numeric" }),
        input("password", "初始密码", { type: "password", autocomplete: "new-password", required: true }),
        error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-primary" }, "创建"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const f = form.elements;
        try {
          const account = await post("/api/admin/accounts", {
            username: f.username.value.trim(),
            display_name: f.display_name.value.trim(),
            role: f.role.value,
            agency_region: f.agency_region.value.trim(),
            windows: f.windows.value.split(/[,，\s]+/).filter(Boolean),
            department: f.department.value.trim(),
            mobile: f.mobile.value.trim(),
            password: f.password.value,
          });
          close(account);
        } catch (err) {
          error.textContent = errorText(err.error);
          error.hidden = false;
        }
      });
      return form;
    });
    if (created) {
      toast(`已创建账号 ${created.username}。`);
      loadAccounts();
    }
  }

  loadHealth();
  loadSms();
  loadAccounts();
  return { destroy() {} };
}
