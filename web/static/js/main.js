// Boot: who is logged in (GET /api/me) decides the page; a lost session returns to the login
// form with the reason in words.
import { api, ApiError, get, onSessionLost, post } from "./api.js";
import { $, dialog, h, replace, toast } from "./dom.js";
import { errorText, REVOKED_REASONS, ROLE_NAMES } from "./messages.js";
import * as socket from "./socket.js";
import { unlockAudio } from "./alerting.js";

const app = $("#app");
let current = null; // the mounted page: {destroy()}
let me = null;

const PAGES = {
  staff: () => import("./console.js"),
  expert: () => import("./console.js"),
  supervisor: () => import("./supervisor.js"),
  auditor: () => import("./auditor.js"),
  admin: () => import("./admin.js"),
};

function unmount() {
  if (current && current.destroy) {
    try {
      current.destroy();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

/** Back to the login form, e.g. after `session:revoked`; `message` says why. */
export function toLogin(message) {
  unmount();
  socket.disconnect();
  me = null;
  $("#topbar").hidden = true;
  $("#connection").hidden = true;
  const form = $("#login-form");
  if (document.body.dataset.page === "login" && form) {
    // already showing the form (e.g. logout answered and session:revoked arrived): keep what
    // the clerk may be typing, only update the reason
    const old = $("#login-message");
    if (old) old.remove();
    if (message) form.querySelector("h1").nextElementSibling.after(loginMessage(message));
    return;
  }
  document.body.dataset.page = "login";
  renderLogin(message);
}

function loginMessage(message) {
  return h("div", { id: "login-message", class: "notice-box", role: "alert" }, message);
}

function renderLogin(message) {
  const error = h("div", { id: "login-error", class: "error-box", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "btn btn-primary btn-huge" }, "登录");
  const form = h("form", { id: "login-form", class: "card login", autocomplete: "on" },
    h("h1", {}, "通办视频协助"),
    h("p", { class: "hint" }, "河南省“统一受理、全省通办”窗口视频协助系统"),
    message ? loginMessage(message) : null,
    h("label", { for: "username" }, "用户名"),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true }),
    h("label", { for: "password" }, "密码"),
    h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    error,
    button);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    unlockAudio();
    error.hidden = true;
    button.disabled = true;
    button.textContent = "正在登录…";
    try {
      await post("/api/login", {
        username: form.elements.username.value.trim(),
        password: form.elements.password.value,
      });
      await boot();
    } catch (err) {
      error.textContent = errorText(err instanceof ApiError ? err.error : { code: "network" });
      error.hidden = false;
      form.elements.password.value = "";
      form.elements.password.focus();
    } finally {
      button.disabled = false;
      button.textContent = "登录";
    }
  });
  replace(app, form);
}

async function boot() {
  unmount();
  try {
    me = await get("/api/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (!me) toLogin(err.code === "unauthenticated" ? null : errorText(err.error));
      return;
    }
    replace(app, h("div", { class: "card" },
      h("div", { class: "error-box", role: "alert" }, errorText(err.error || { code: "network" })),
      h("button", { class: "btn btn-primary", onclick: () => boot() }, "重试")));
    return;
  }
  renderTopbar();
  startSocket();
  const load = PAGES[me.role];
  if (!load) {
    replace(app, h("div", { class: "error-box" }, `未知的角色：${me.role}`));
    return;
  }
  const module = await load();
  document.body.dataset.page = me.role;
  replace(app);
  current = module.mount(app, me);
}

function renderTopbar() {
  const bar = $("#topbar");
  const windows = (me.windows || []).map((w) => `${w.hall} · ${w.name}`).join("；");
  replace($("#who"),
    h("strong", {}, me.display_name || me.username), `（${me.username}，${ROLE_NAMES[me.role] || me.role}）`,
    " ", me.agency ? me.agency.name : "", windows ? ` · ${windows}` : "");
  bar.hidden = false;
}

function startSocket() {
  socket.disconnect();
  socket.on("session:revoked", (data) => {
    toLogin(REVOKED_REASONS[data.reason] || REVOKED_REASONS.replaced);
  });
  socket.connect();
}

socket.onConnectionState((state, detail) => {
  const banner = $("#connection");
  if (!me) {
    banner.hidden = true;
    return;
  }
  if (state === "refused" && detail && detail.code && detail.code.startsWith("session")) {
    toLogin(errorText(detail));
    return;
  }
  if (state === "refused" && detail && detail.code === "unauthenticated") {
    toLogin(errorText(detail));
    return;
  }
  const text = {
    connecting: "正在连接服务器…",
    reconnecting: "与服务器的实时连接中断，正在重连…（来电提醒暂不可用）",
    unavailable: "实时连接组件未加载，来电提醒不可用，请联系管理员。",
    refused: `服务器拒绝了实时连接：${detail && detail.message ? detail.message : "请刷新页面"}`,
  }[state];
  banner.hidden = !text;
  banner.textContent = text || "";
  banner.dataset.state = state;
});

onSessionLost((code) => {
  if (code === "unauthenticated" && !me) return;
  toLogin(code === "unauthenticated" ? "登录已失效，请重新登录。" : errorText({ code }));
});

$("#btn-logout").addEventListener("click", async () => {
  socket.disconnect(); // our own logout is not news to push back to us
  try {
    await post("/api/logout");
  } catch (err) {
    /* the session may already be gone */
  }
  toLogin("已退出登录。");
});

$("#btn-password").addEventListener("click", () => changePassword());

async function changePassword() {
  await dialog((close) => {
    const error = h("div", { class: "error-box", role: "alert", hidden: true });
    const form = h("form", { id: "password-form" },
      h("h2", {}, "修改密码"),
      h("p", { class: "hint" }, "密码至少 10 位，包含大写字母、小写字母、数字、符号中的至少三类。账号仅限本人使用。"),
      h("label", { for: "pw-current" }, "当前密码"),
      h("input", { id: "pw-current", name: "current_password", type: "password", autocomplete: "current-password", required: true }),
      h("label", { for: "pw-new" }, "新密码"),
      h("input", { id: "pw-new", name: "new_password", type: "password", autocomplete: "new-password", required: true }),
      h("label", { for: "pw-again" }, "再次输入新密码"),
      h("input", { id: "pw-again", name: "again", type: "password", autocomplete: "new-password", required: true }),
      error,
      h("div", { class: "btn-row" },
        h("button", { type: "submit", class: "btn btn-primary" }, "保存新密码"),
        h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      if (form.elements.new_password.value !== form.elements.again.value) {
        error.textContent = "两次输入的新密码不一致。";
        error.hidden = false;
        return;
      }
      try {
        await api("POST", "/api/me/password", {
          current_password: form.elements.current_password.value,
          new_password: form.elements.new_password.value,
        });
        toast("密码已修改。");
        close(true);
      } catch (err) {
        error.textContent = errorText(err.error);
        error.hidden = false;
      }
    });
    return form;
  });
}

window.addEventListener("pointerdown", unlockAudio, { once: true });
boot();
