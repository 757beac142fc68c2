// The admin's directory: each hall's office hours, which matters each home-locality window
// owns for which regions, and next year's working-day calendar (chinese-calendar knows
// 2026 at most). Every change is audited by the server.
import { get, post, put } from "./api.js";
import { dialog, h, replace, table, toast } from "./dom.js";
import { errorText } from "./messages.js";

const DAY_KINDS = { workday: "工作日", restday: "休息日", everyday: "每天" };
const KIND_NAMES = { applicant: "申请地", home: "属地", both: "申请地/属地" };

export function mountDirectory(directorySection, calendarSection) {
  async function load() {
    let data;
    try {
      data = await get("/api/admin/directory");
    } catch (err) {
      replace(directorySection, h("h2", {}, "大厅、窗口与事项"), h("div", { class: "error-box" }, errorText(err.error)));
      return;
    }
    const halls = data.halls.map((hall) => h("div", { class: "hall", dataset: { hallId: hall.id } },
      h("h3", {}, `${hall.name}（${hall.agency}）`),
      h("p", {}, "办公时间：",
        hall.office_hours.length
          ? hall.office_hours.map((p) => `${DAY_KINDS[p.days] || p.days} ${p.hours}`).join("，")
          : "未设置",
        " ",
        h("button", { type: "button", class: "btn", onclick: () => editHours(hall) }, "修改办公时间")),
      table(hall.windows, [
        { title: "窗口", render: (w) => `${w.code} ${w.name}` },
        { title: "类型", render: (w) => KIND_NAMES[w.kind] || w.kind },
        { title: "负责事项（事项@属地区划）", render: (w) => w.owns.map((o) => `${o.matter_code}@${o.region_code}`).join("，") || "—" },
        { title: "人员", render: (w) => w.staff.join("，") || "—" },
        { title: "操作", render: (w) => (w.kind === "applicant" ? "" :
          h("button", { type: "button", class: "btn", onclick: () => editMatters(w) }, "修改负责事项")) },
      ])));
    replace(directorySection, h("h2", {}, "大厅、窗口与事项"), ...halls);
    const cal = data.calendar;
    replace(calendarSection, h("h2", {}, "工作日历"),
      h("p", {}, "已导入的年度安排：", cal.loaded_years.length ? cal.loaded_years.join("、") : "无（使用 chinese-calendar 数据）"),
      cal.warnings.map((w) => h("div", { class: "notice-box" }, w)),
      h("button", { type: "button", class: "btn btn-primary", id: "btn-load-calendar", onclick: loadCalendar }, "导入节假日安排"));
  }

  // Edits are plain text, one entry per line, so a year's schedule can be pasted in.
  function textDialog(title, hint, initial, submit) {
    return dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const form = h("form", {},
        h("h2", {}, title),
        h("p", { class: "hint" }, hint),
        h("textarea", { name: "lines", rows: 10, cols: 48 }, initial),
        error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-primary" }, "保存"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const lines = form.elements.lines.value.split("\n").map((l) => l.trim()).filter(Boolean);
        try {
          await submit(lines);
          toast("已保存。");
          close(true);
          load();
        } catch (err) {
          error.textContent = err.error ? errorText(err.error) : String(err.message || err);
          error.hidden = false;
        }
      });
      return form;
    });
  }

  function editHours(hall) {
    const initial = hall.office_hours.map((p) => `${p.days} ${p.hours.replace("-", " ")}`).join("\n");
    return textDialog(`${hall.name} 办公时间`,
      "每行一个时段：类型（workday 工作日 / restday 休息日 / everyday 每天） 开始 结束，如 workday 09:00 12:00",
      initial,
      (lines) => put(`/api/admin/halls/${hall.id}/office-hours`, {
        periods: lines.map((line) => {
          const [days, opens, closes] = line.split(/\s+/);
          return { days, opens, closes };
        }),
      }));
  }

  function editMatters(window) {
    const initial = window.owns.map((o) => `${o.matter_code} ${o.region_code}`).join("\n");
    return textDialog(`${window.name} 负责事项`,
      "每行一项：事项编码 属地区划代码，如 HN-ZJ-001 410727",
      initial,
      (lines) => put(`/api/admin/windows/${window.id}/matters`, {
        owns: lines.map((line) => {
          const [matter_code, region_code] = line.split(/\s+/);
          return { matter_code, region_code };
        }),
      }));
  }

  function loadCalendar() {
    return textDialog("导入节假日安排",
      "每行一天：日期 班/休 名称，如 2027-01-01 休 元旦、2027-02-07 班 春节调休。未列出的日子按周一至周五为工作日。",
      "",
      (lines) => post("/api/admin/calendar", {
        days: lines.map((line) => {
          const [day, kind, ...name] = line.split(/\s+/);
          if (kind !== "班" && kind !== "休") throw new Error(`“${line}”：第二项应为“班”或“休”`);
          return { day, workday: kind === "班", name: name.join(" ") };
        }),
      }));
  }

  load();
}
