// The auditor's page (R7): find recordings of calls in this jurisdiction, play each party of
// them in the page (Range requests), download them (every play and download is audited by the server),
// put them on legal hold, see when each expires.
import { get, post, query } from "./api.js";
import { dialog, display, fmtDate, fmtDateTime, fmtDuration, h, replace, table, toast } from "./dom.js";
import { errorText } from "./messages.js";
import { pick, listOf } from "./generic.js";

// `embedded`: inside another page (the supervisor's 录像调阅 tab), which has its own heading
// and status line.
export function mount(root, me, { embedded = false } = {}) {
  const status = h("div", { id: embedded ? "recordings-status" : "status-line", class: "status-line", role: "status", "aria-live": "polite" },
    "输入案件编号或时间范围查找录像。录像保存 6 个月，到期自动删除（法律保全中的除外）。");
  const form = h("form", { id: "recording-search", class: "card" },
    h("h2", {}, "查找录像"),
    h("div", { class: "inline" },
      field("case_no", "案件编号", h("input", { id: "case_no", name: "case_no", placeholder: "如 410727…" })),
      field("from", "开始日期", h("input", { id: "from", name: "from", type: "date" })),
      field("to", "结束日期", h("input", { id: "to", name: "to", type: "date" })),
      field("window", "窗口", h("input", { id: "window", name: "window", placeholder: "窗口代码" })),
      field("staff", "人员", h("input", { id: "staff", name: "staff", placeholder: "账号" })),
      h("div", {}, h("button", { type: "submit", class: "btn btn-primary" }, "查找"))));
  const results = h("div", { id: "recordings" });
  const player = h("section", { id: "player", class: "card player", hidden: true });
  replace(root, status, embedded ? null : h("h1", {}, `${me.agency ? me.agency.name : ""} 录像调阅`), form, player, results);

  let rows = [];
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    search();
  });

  async function search() {
    const f = form.elements;
    const params = {
      case_no: f.case_no.value.trim(), from: f.from.value, to: f.to.value,
      window: f.window.value.trim(), staff: f.staff.value.trim(),
    };
    status.textContent = "正在查找…";
    try {
      rows = listOf(await get(`/api/recordings${query(params)}`), "recordings");
    } catch (err) {
      status.textContent = `查找失败：${errorText(err.error)}`;
      status.className = "status-line alert";
      return;
    }
    status.className = "status-line";
    status.textContent = rows.length ? `找到 ${rows.length} 条录像` : "没有找到符合条件的录像（只显示本辖区有权调阅的录像）";
    renderRows();
  }

  function renderRows() {
    replace(results, table(rows, [
      { title: "案件编号", render: (r) => h("div", {}, display(pick(r, "case_no", "case.case_no")), h("div", { class: "hint" }, pick(r, "matter.name") || "")) },
      { title: "通话时间", render: (r) => fmtDateTime(pick(r, "started_at", "created_at")) },
      { title: "时长", render: (r) => fmtDuration(pick(r, "duration_s")) },
      { title: "窗口 / 人员", render: (r) => participants(r) },
      { title: "状态", render: (r) => stateTag(r) },
      { title: "保留至", render: (r) => (isHeld(r)
        ? h("div", {}, h("span", { class: "tag tag-amber" }, "法律保全中，不会删除"), h("div", { class: "hint" }, pick(r, "legal_hold_reason", "hold_reason") || ""))
        : pick(r, "expires_on") || fmtDate(pick(r, "expires_at"))) },
      { title: "操作", render: (r) => h("div", { class: "btn-row", style: "margin:0" },
        h("button", { type: "button", class: "btn btn-primary", dataset: { recordingId: r.id }, onclick: () => play(r), disabled: !playable(r) }, "播放"),
        h("a", { class: "btn", href: downloadUrl(r), download: "", dataset: { recordingId: r.id }, "aria-disabled": String(!playable(r)) }, "下载"),
        h("button", { type: "button", class: "btn", onclick: () => hold(r) }, isHeld(r) ? "解除保全" : "法律保全")) },
    ], { empty: "没有录像。" }));
  }

  // A browser plays only the first video and audio track of the call's archive, so the page
  // plays one party at a time: the server makes a view per participant and video source
  // (their picture and their own voice, without re-encoding) and the selector switches
  // between them at the same moment of the call.
  function play(r) {
    const views = r.views || [];
    const video = h("video", { id: "recording-video", controls: true, autoplay: true, preload: "metadata" });
    const note = h("p", { id: "player-note", class: "hint", role: "status", "aria-live": "polite" });
    let current = null;
    video.addEventListener("error", () => explain(video.currentSrc || video.src));
    video.addEventListener("loadeddata", () => {
      note.textContent = current ? `正在播放：${viewName(r, current)}。切换其他一方时从同一时刻继续。` : "";
    });

    function show(view, keepTime) {
      const at = keepTime ? video.currentTime : 0;
      const paused = keepTime ? video.paused : false;
      current = view;
      note.textContent = `正在准备 ${viewName(r, view)} 的画面…（首次播放需要几秒）`;
      video.src = view ? viewUrl(r, view) : playUrl(r);
      if (at > 0) {
        video.addEventListener("loadedmetadata", () => {
          video.currentTime = Math.min(at, Number.isFinite(video.duration) ? video.duration : at);
        }, { once: true });
      }
      if (!paused) video.play().catch(() => {});
    }

    async function explain(src) {
      let text = "录像无法在浏览器中播放，请点击“下载”后用播放器查看。";
      try {
        const resp = await fetch(src, { headers: { Range: "bytes=0-0" }, credentials: "same-origin" });
        if ((resp.headers.get("Content-Type") || "").includes("application/json")) {
          const body = await resp.json();
          text = errorText(body && body.error);
        }
      } catch {
        // keep the general sentence
      }
      note.textContent = text;
      toast(text, { error: true });
    }

    const chooser = views.length
      ? h("div", { class: "inline" }, h("div", {},
          h("label", { for: "recording-view" }, "观看哪一方"),
          h("select", { id: "recording-view", name: "view", onchange: (ev) => show(views.find((v) => v.id === ev.target.value), true) },
            views.map((v) => h("option", { value: v.id }, viewName(r, v))))))
      : null;
    player.hidden = false;
    replace(player,
      h("h2", {}, `播放录像 · ${display(pick(r, "case_no", "case.case_no"))} · ${fmtDateTime(pick(r, "started_at"))}`),
      chooser,
      video,
      note,
      h("p", { class: "hint" },
        views.length > 1
          ? `本录像有 ${views.length} 路画面，每次播放一方的画面和该方自己的声音；在“观看哪一方”中切换。“下载”得到包含各方全部音视频的完整录像。`
          : "“下载”得到包含各方全部音视频的完整录像。"),
      h("div", { class: "btn-row" },
        h("a", { class: "btn", href: downloadUrl(r), download: "" }, "下载"),
        h("button", { type: "button", class: "btn", onclick: () => { video.pause(); video.removeAttribute("src"); video.load(); player.hidden = true; replace(player); } }, "关闭播放")));
    show(views[0] || null, false);
    player.scrollIntoView({ behavior: "smooth" });
  }

  async function hold(r) {
    const holding = !isHeld(r);
    const reason = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const text = h("textarea", { id: "hold-reason", name: "reason", maxlength: 200, required: true });
      const form2 = h("form", { id: "hold-form", novalidate: true },
        h("h2", {}, holding ? "法律保全" : "解除法律保全"),
        h("p", {}, holding ? "保全期间该录像不会因保存期满而删除。" : `解除后，录像将在保存期满（${pick(r, "expires_on") || fmtDate(pick(r, "expires_at"))}）后自动删除。`),
        h("label", { for: "hold-reason" }, "理由（如案件编号、调查函号）"), text, error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-primary" }, holding ? "保全" : "解除保全"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
      form2.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (!text.value.trim()) {
          error.textContent = "请填写理由。";
          error.hidden = false;
          return;
        }
        close(text.value.trim());
      });
      return form2;
    });
    if (!reason) return;
    try {
      const updated = await post(`/api/recordings/${r.id}/hold`, { hold: holding, reason });
      Object.assign(r, updated && typeof updated === "object" && updated.id ? updated : { legal_hold: holding, legal_hold_reason: reason });
      toast(holding ? "已设置法律保全。" : "已解除法律保全。");
      renderRows();
    } catch (err) {
      toast(errorText(err.error), { error: true });
    }
  }

  return {
    destroy() {
      for (const v of player.querySelectorAll("video")) v.pause();
    },
  };
}

function field(id, title, input) {
  return h("div", {}, h("label", { for: id }, title), input);
}

const SOURCE_NAMES = { camera: "摄像头", document: "高拍仪", audio: "仅声音" };

// "申请地 张三（zz.a1）· 摄像头": the side, who, and which source
function viewName(r, v) {
  if (!v) return "完整录像";
  const p = (r.participants || []).find((x) => x.username === v.participant);
  const who = p ? `${MEMBER_ROLES[p.role] || ""} ${p.display_name || p.username}（${p.username}）`.trim() : v.participant;
  return `${who} · ${SOURCE_NAMES[v.source] || v.source}`;
}

function viewUrl(r, v) {
  return `/api/recordings/${encodeURIComponent(r.id)}/play?track=${encodeURIComponent(v.id)}`;
}

// in-page playback is audited as a play (recording.play), the 下载 button as a download
function playUrl(r) {
  return `${downloadUrl(r)}?inline=1`;
}

function downloadUrl(r) {
  return `/api/recordings/${encodeURIComponent(r.id)}/download`;
}

function isHeld(r) {
  return Boolean(r.legal_hold ?? r.hold);
}

function playable(r) {
  return !r.state || r.state === "ready" || r.state === "finalised" || r.state === "available";
}

function stateTag(r) {
  const s = r.state || "ready";
  const text = { ready: "可调阅", recording: "录制中", finalising: "处理中", failed: "录制失败", deleted: "已到期删除" }[s] || s;
  const tag = h("span", { class: `tag ${s === "ready" ? "tag-green" : s === "failed" || s === "deleted" ? "tag-red" : "tag-amber"}` }, text);
  return r.error ? h("div", {}, tag, h("div", { class: "hint" }, r.error)) : tag;
}

const MEMBER_ROLES = { caller: "申请地", callee: "属地", expert: "专家" };

function participants(r) {
  const windows = [r.applicant_window, r.home_window].filter(Boolean)
    .map((w) => h("div", {}, `${w.hall || ""} · ${w.name || w.code || ""}`));
  const people = (r.participants || []).map((p) => h("div", { class: "hint" },
    `${MEMBER_ROLES[p.role] || p.role || ""} ${p.display_name || p.username}`));
  return windows.length || people.length ? h("div", {}, windows, people) : display(pick(r, "window"));
}
