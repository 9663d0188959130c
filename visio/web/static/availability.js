// The availability editor: weekly hours, closed days and absences, saved as one document.
const form = document.getElementById("availability");
const texts = JSON.parse(form.dataset.texts);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const lang = document.documentElement.lang;
const status = document.getElementById("availability-status");
let doc = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

// Times are typed as hh:mm (24-hour clock) in a text field: <input type=time> follows the
// browser's locale and shows AM/PM in some of them, whatever the page's language.
const CLOCK = "([01][0-9]|2[0-3]):[0-5][0-9]";

function clock(value, label, field) {
  return el("input", {type: "text", value: (value || "").slice(0, 5), "aria-label": label,
    "aria-describedby": "clock-hint", "data-field": field, class: "clock", inputmode: "numeric",
    autocomplete: "off", maxlength: "5", size: "5", placeholder: "hh:mm", pattern: CLOCK,
    required: ""});
}

function ruleRow(rule, index) {
  const day = el("select", {"aria-label": `${texts.weekday} ${index + 1}`, "data-field": "weekday"},
    ...texts.weekdays.map((name, i) => { const o = new Option(name, String(i)); o.selected = i === rule.weekday; return o; }));
  const opens = clock(rule.opens, `${texts.from} ${index + 1} (${texts.clock})`, "opens");
  const closes = clock(rule.closes, `${texts.to} ${index + 1} (${texts.clock})`, "closes");
  const remove = el("button", {type: "button"}, texts.remove);
  // The other rows' edits are read first: removing one row must not undo them.
  remove.addEventListener("click", () => { readRules(); doc.rules.splice(index, 1); draw(); });
  return el("tr", {}, el("td", {}, day), el("td", {}, opens), el("td", {}, closes), el("td", {}, remove));
}

function listItem(text, onRemove) {
  const remove = el("button", {type: "button", "aria-label": `${texts.remove}: ${text}`}, texts.remove);
  remove.addEventListener("click", onRemove);
  return el("li", {}, `${text} `, remove);
}

function readRules() {
  doc.rules = [...document.querySelectorAll("#rules tr")].map((row, i) => ({
    ...doc.rules[i],
    weekday: Number(row.querySelector('[data-field="weekday"]').value),
    opens: row.querySelector('[data-field="opens"]').value,
    closes: row.querySelector('[data-field="closes"]').value,
  }));
}

function draw() {
  document.getElementById("zone").textContent = doc.timezone;
  document.getElementById("rules").replaceChildren(...doc.rules.map(ruleRow));
  document.getElementById("closures").replaceChildren(...doc.overrides
    .filter((o) => o.ranges.length === 0)
    .map((o) => listItem(`${o.date} – ${texts.closed}`, () => {
      doc.overrides = doc.overrides.filter((x) => x !== o); draw();
    })));
  document.getElementById("absences").replaceChildren(...doc.absences.map((a) =>
    listItem(`${a.start.slice(0, 16).replace("T", " ")} → ${a.end.slice(0, 16).replace("T", " ")}`, () => {
      doc.absences = doc.absences.filter((x) => x !== a); draw();
    })));
}

async function load() {
  const response = await fetch("/web/availability", {credentials: "same-origin"});
  doc = await response.json();
  draw();
}

function zoneOffset(utcMillis, zone) {
  // Minutes ahead of UTC in ``zone`` at that instant.
  const parts = new Intl.DateTimeFormat("en-GB", {timeZone: zone, hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit"}).formatToParts(new Date(utcMillis));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"),
                        get("second"));
  return Math.round((wall - utcMillis) / 60000);
}

function offset(local) {
  // The absence is typed in the staff member's zone (the one the list shows), whatever
  // the browser's own zone: the wall-clock time is sent with that zone's offset then.
  const wall = Date.parse(`${local}:00Z`);
  let minutes = zoneOffset(wall, doc.timezone);
  minutes = zoneOffset(wall - minutes * 60000, doc.timezone);
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `${local}:00${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

document.getElementById("add-rule").addEventListener("click", () => {
  readRules();
  doc.rules.push({weekday: 0, opens: "09:00", closes: "12:00", valid_from: null, valid_until: null});
  draw();
});
document.getElementById("add-closure").addEventListener("click", () => {
  const day = document.getElementById("closure-day").value;
  if (!day) return;
  readRules();
  doc.overrides = doc.overrides.filter((o) => o.date !== day).concat([{date: day, ranges: []}]);
  draw();
});
document.getElementById("add-absence").addEventListener("click", () => {
  const at = (id) => {
    const day = document.getElementById(id).value;
    const time = document.getElementById(`${id}-time`);
    if (!day) return null;
    if (!time.checkValidity()) { refuse(texts.badAbsence, time); return null; }
    return `${day}T${time.value}`;
  };
  const start = at("absence-start");
  const end = at("absence-end");
  if (!start || !end) return;
  readRules();
  doc.absences.push({start: offset(start), end: offset(end), reason: null});
  draw();
});
const affected = document.getElementById("affected");

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
}

function refuse(message, field) {
  status.textContent = message;
  status.className = "error";
  (field || status).focus();
}

function firstBadClock() {
  // Checked here so that the person reads which row and day, never a field path.
  for (const [i, row] of [...document.querySelectorAll("#rules tr")].entries()) {
    for (const field of row.querySelectorAll(".clock")) {
      if (!field.checkValidity()) {
        const weekday = texts.weekdays[Number(row.querySelector('[data-field="weekday"]').value)];
        return [fill(texts.badTime, {row: i + 1, weekday}), field];
      }
    }
  }
  return null;
}

async function save(confirm) {
  affected.hidden = true;
  const bad = firstBadClock();
  if (bad) { refuse(...bad); return; }
  readRules();
  const body = {rules: doc.rules, overrides: doc.overrides, confirm,
                absences: doc.absences.map(({start, end, reason}) => ({start, end, reason}))};
  const response = await fetch("/web/availability", {
    method: "PUT", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept-Language": lang},
    body: JSON.stringify(body),
  });
  const result = await response.json();
  if (response.ok) { doc = result; draw(); status.textContent = texts.saved; status.className = "ok"; return; }
  if (response.status === 409 && result.reason === "appointments_affected") {
    // Nothing was saved: the staff member confirms, knowing which appointments it moves.
    const when = (iso) => new Intl.DateTimeFormat(lang, {timeZone: doc.timezone, dateStyle: "full"}).format(new Date(iso));
    const at = (iso) => new Intl.DateTimeFormat(lang, {timeZone: doc.timezone, hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).format(new Date(iso));
    document.getElementById("affected-list").replaceChildren(...result.appointments.map((a) =>
      el("li", {}, fill(texts.affectedAt, {day: when(a.start), time: at(a.start), site: a.site, name: a.first_name}))));
    affected.hidden = false;
    refuse(result.detail, null);
    return;
  }
  refuse(result.detail, null);
}

form.addEventListener("submit", (event) => { event.preventDefault(); save(false); });
document.getElementById("confirm-save").addEventListener("click", () => save(true));
document.getElementById("cancel-save").addEventListener("click", () => {
  affected.hidden = true; status.textContent = "";
});
load();
