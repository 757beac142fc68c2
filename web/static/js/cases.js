// The applicant-side clerk's cases: pick one of the window's cases or register a new one
// (R14). The ID number is checked as it is typed, with the server's rule (GB 11643).
import { get, post, query } from "./api.js";
import { fmtDateTime, h, replace, table } from "./dom.js";
import { checkAsTyped, validateIdNumber } from "./idnumber.js";
import { errorText } from "./messages.js";

/**
 * A card with the case list and the new-case form. `onSelect(case)` is called when the clerk
 * picks a case (or creates one). Returns {element, refresh(), selected()}.
 */
export function casePicker({ onSelect }) {
  let cases = [];
  let selected = null;
  const listBox = h("div", { id: "case-list" }, h("p", { class: "hint" }, "正在加载案件…"));
  const search = h("input", { id: "case-search", name: "case_no", placeholder: "按案件编号查找", "aria-label": "按案件编号查找" });
  const formBox = h("div", { id: "case-form-box", hidden: true });
  const newButton = h("button", { type: "button", class: "btn", id: "btn-new-case" }, "新建案件");

  async function refresh() {
    try {
      const data = await get(`/api/cases${query({ case_no: search.value.trim() })}`);
      cases = data.cases || [];
      renderList();
    } catch (err) {
      replace(listBox, h("div", { class: "error-box", role: "alert" }, `案件列表加载失败：${errorText(err.error)}`));
    }
  }

  function choose(c) {
    selected = c;
    renderList();
    onSelect(c);
  }

  function renderList() {
    replace(listBox, table(cases.slice(0, 50), [
      { title: "选择", render: (c) => h("input", {
        type: "radio", name: "case", value: String(c.id), checked: selected && selected.id === c.id,
        "aria-label": `选择案件 ${c.case_no}`, onchange: () => choose(c),
      }) },
      { title: "案件编号", render: (c) => h("div", {}, c.case_no, h("div", { class: "hint" }, fmtDateTime(c.created_at))) },
      { title: "事项", key: "matter_name" },
      { title: "申请人", render: (c) => h("div", {}, c.applicant_name, h("div", { class: "hint" }, c.applicant_id_number)) },
    ], {
      empty: "还没有案件。请点击“新建案件”登记申请人的材料信息。",
      rowAttrs: (c) => ({ class: selected && selected.id === c.id ? "selected" : "", onclick: (ev) => {
        if (ev.target.tagName !== "INPUT") choose(c);
      } }),
    }));
  }

  newButton.addEventListener("click", async () => {
    formBox.hidden = !formBox.hidden;
    if (!formBox.hidden && !formBox.firstChild) replace(formBox, await caseForm({
      onCreated: (c) => {
        formBox.hidden = true;
        replace(formBox);
        cases = [c, ...cases.filter((x) => x.id !== c.id)];
        choose(c);
      },
      onCancel: () => {
        formBox.hidden = true;
        replace(formBox);
      },
    }));
  });
  search.addEventListener("input", () => {
    clearTimeout(search._t);
    search._t = setTimeout(refresh, 300);
  });

  const element = h("section", { class: "card", id: "cases" },
    h("h2", {}, "① 选择案件"),
    h("div", { class: "inline" }, h("div", {}, search), newButton),
    formBox,
    listBox);
  refresh();
  return { element, refresh, selected: () => selected };
}

async function caseForm({ onCreated, onCancel }) {
  let directory = { matters: [], regions: [] };
  const error = h("div", { class: "error-box", role: "alert", hidden: true });
  try {
    directory = await get("/api/directory");
  } catch (err) {
    error.textContent = `事项目录加载失败：${errorText(err.error)}`;
    error.hidden = false;
  }
  const idFeedback = h("div", { id: "id-number-feedback", class: "field-error", "aria-live": "polite" });
  const idInput = h("input", {
    id: "applicant_id_number", name: "applicant_id_number", maxlength: 20, autocomplete: "off",
    inputmode: "text", spellcheck: "false", "aria-describedby": "id-number-feedback",
  });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "登记案件");
  const form = h("form", { id: "case-form", novalidate: true },
    h("h3", {}, "新建案件"),
    h("label", { for: "matter_code" }, "办理事项"),
    h("select", { id: "matter_code", name: "matter_code", required: true },
      directory.matters.map((m) => h("option", { value: m.code }, `${m.name}（${m.code}）`))),
    h("label", { for: "region_code" }, "属地（事项所属地）"),
    h("select", { id: "region_code", name: "region_code", required: true },
      h("option", { value: "" }, "请选择事项所属地"),
      directory.regions.map((r) => h("option", { value: r.code }, `${r.name || r.code}（${r.code}）`))),
    h("label", { for: "applicant_name" }, "申请人姓名"),
    h("input", { id: "applicant_name", name: "applicant_name", maxlength: 60, required: true, autocomplete: "off" }),
    h("label", { for: "applicant_id_number" }, "申请人身份证号码"),
    idInput,
    idFeedback,
    h("label", { for: "applicant_phone" }, "申请人手机号码（选填）"),
    h("input", { id: "applicant_phone", name: "applicant_phone", maxlength: 11, inputmode: "numeric", autocomplete: "off" }),
    error,
    h("div", { class: "btn-row" }, submit,
      h("button", { type: "button", class: "btn", onclick: onCancel }, "取消")));

  function showIdState() {
    const result = checkAsTyped(idInput.value);
    idFeedback.className = "field-error";
    idInput.removeAttribute("aria-invalid");
    if (result.state === "error") {
      idFeedback.textContent = result.message;
      idInput.setAttribute("aria-invalid", "true");
    } else if (result.state === "pending") {
      idFeedback.className = "hint";
      idFeedback.textContent = `还差 ${result.missing} 位`;
    } else if (result.state === "ok") {
      idFeedback.className = "field-ok";
      idFeedback.textContent = "✓ 号码格式与校验位正确";
    } else {
      idFeedback.textContent = "";
    }
    return result;
  }
  idInput.addEventListener("input", showIdState);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const fields = form.elements;
    const id = validateIdNumber(idInput.value);
    if (!fields.applicant_name.value.trim()) {
      error.textContent = "请填写申请人姓名。";
      error.hidden = false;
      fields.applicant_name.focus();
      return;
    }
    if (!id.ok) {
      showIdState();
      idFeedback.textContent = id.message;
      idInput.setAttribute("aria-invalid", "true");
      idInput.focus();
      return;
    }
    if (!fields.region_code.value) {
      error.textContent = "请选择事项所属地（属地）。";
      error.hidden = false;
      fields.region_code.focus();
      return;
    }
    const phone = fields.applicant_phone.value.trim();
    if (phone && !/^\d{11}$/.test(phone)) {
      error.textContent = "手机号码必须是 11 位数字。";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = "正在登记…";
    try {
      const created = await post("/api/cases", {
        matter_code: fields.matter_code.value,
        region_code: fields.region_code.value,
        applicant_name: fields.applicant_name.value.trim(),
        applicant_id_number: id.value,
        applicant_phone: phone,
      });
      // never keep the full number in the page once the server has it
      idInput.value = "";
      onCreated(created);
    } catch (err) {
      error.textContent = errorText(err.error);
      error.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = "登记案件";
    }
  });
  return form;
}

/** A case in a few lines (ID number as the server masked it). */
export function caseSummary(c) {
  if (!c) return null;
  return h("div", { class: "big-facts case-summary" },
    h("div", {}, h("b", {}, "案件编号"), c.case_no),
    h("div", {}, h("b", {}, "事项"), c.matter_name || c.matter_code || "—"),
    h("div", {}, h("b", {}, "申请人"), c.applicant_name || "—",
      c.applicant_id_number ? `（身份证 ${c.applicant_id_number}）` : ""),
    c.home_window !== undefined
      ? h("div", {}, h("b", {}, "属地窗口"), c.home_window ? `${c.home_window.hall} · ${c.home_window.name}` : "无对应窗口")
      : null);
}
