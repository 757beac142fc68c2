// Resident identity card numbers (GB 11643-1999), the same rule as cases/idnumber.py, checked
// as the clerk types so a wrong digit is caught before the form is sent.

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = "10X98765432";

export function checkDigit(first17) {
  let sum = 0;
  for (let i = 0; i < 17; i += 1) sum += Number(first17[i]) * WEIGHTS[i];
  return CHECK[sum % 11];
}

function validBirthDate(number) {
  const y = Number(number.slice(6, 10));
  const m = Number(number.slice(10, 12));
  const d = Number(number.slice(12, 14));
  if (y < 1900 || m < 1 || m > 12 || d < 1) return false;
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/** The full rule: {ok: true, value} or {ok: false, code, message} with the server's codes. */
export function validateIdNumber(raw) {
  const number = String(raw || "").trim().toUpperCase();
  if (number.length !== 18) return fail("id_number_length", "身份证号码应为 18 位");
  if (!/^\d{17}[\dX]$/.test(number)) {
    return fail("id_number_format", "身份证号码前 17 位应为数字，最后一位为数字或 X");
  }
  if (!validBirthDate(number)) return fail("id_number_birth_date", "身份证号码中的出生日期无效");
  if (checkDigit(number.slice(0, 17)) !== number[17]) {
    return fail("id_number_checksum", "身份证号码校验位不正确");
  }
  return { ok: true, value: number };
}

/**
 * While typing: only what is already certainly wrong is an error; an incomplete number is
 * "pending" with how many characters are still missing.
 */
export function checkAsTyped(raw) {
  const number = String(raw || "").trim().toUpperCase();
  if (number === "") return { state: "empty" };
  if (number.length > 18) return { state: "error", ...fail("id_number_length", "身份证号码应为 18 位，已超出") };
  const head = number.slice(0, 17);
  if (!/^\d*$/.test(head) || (number.length === 18 && !/[\dX]$/.test(number))) {
    return { state: "error", ...fail("id_number_format", "身份证号码前 17 位应为数字，最后一位为数字或 X") };
  }
  if (number.length >= 14 && !validBirthDate(number.padEnd(18, "0"))) {
    return { state: "error", ...fail("id_number_birth_date", "身份证号码中的出生日期无效") };
  }
  if (number.length < 18) return { state: "pending", missing: 18 - number.length };
  const full = validateIdNumber(number);
  return full.ok ? { state: "ok", value: full.value } : { state: "error", ...full };
}

function fail(code, message) {
  return { ok: false, code, message };
}
