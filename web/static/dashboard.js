import { api, el, setCsrf } from "./http.js";

const error = document.getElementById("error");
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function time(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
}

async function load() {
  const me = await api("GET", "/api/v1/me");
  setCsrf(me.csrf_token);
  const roles = me.staff.roles.map((r) => r.replaceAll("_", " ")).join(", ");
  document.getElementById("who").textContent = `${me.staff.name} (${roles})`;
  const nav = document.getElementById("nav");
  if (me.staff.roles.includes("practitioner")) nav.append(el("a", "My visits", { href: "/visits" }));
  if (me.staff.roles.includes("safeguarding")) nav.append(el("a", "Recordings", { href: "/recordings" }));
  // Every member of staff may see concerns: managers and safeguarding leads all, others those they raised.
  nav.append(el("a", "Concerns", { href: "/concerns", "data-testid": "concerns-link" }));
  if (me.needs_second_factor) { window.location.assign("/login"); return; }
  if (me.needs_enrolment) {
    const section = document.getElementById("enrol");
    section.hidden = false;
    const { otpauth_uri } = await api("POST", "/api/v1/me/totp");
    document.getElementById("otpauth").textContent = otpauth_uri;
    document.getElementById("enrol-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("POST", "/api/v1/me/totp/confirm", { code: event.target.code.value });
        window.location.reload();
      } catch (e) { error.textContent = e.message; }
    });
    return;
  }
  if (me.staff.roles.some((r) => ALERTED.includes(r))) await showOverdue();
  if (me.staff.roles.some((r) => ["manager", "safeguarding"].includes(r))) await showWaiting(me);
  const [bookings, clients] = await Promise.all([api("GET", "/api/v1/bookings"), api("GET", "/api/v1/clients")]);
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const body = document.querySelector("[data-testid=today-sessions] tbody");
  for (const b of bookings) {
    const row = el("tr", undefined, { "data-testid": `booking-${b.id}` });
    row.append(el("td", `${time(b.starts_at)}–${time(b.ends_at)}`), el("td", b.kind.replace("_", " ")),
      el("td", names.get(b.client_id) || `client ${b.client_id}`), el("td", b.status));
    const open = el("td");
    if (b.practitioner_id === me.staff.id || me.staff.roles.includes("safeguarding")) {
      open.append(el("a", "Open", { href: `/s/${b.id}` }));
    }
    row.append(open);
    const check = el("td", "", { "data-testid": `check-${b.id}` });
    row.append(check);
    body.append(row);
    api("GET", `/api/v1/bookings/${b.id}/checks`).then((runs) => {
      if (!runs.length) { check.textContent = "no device check yet"; return; }
      const days = runs[0].days_ago;
      const when = days <= 0 ? "today" : `${days} day${days === 1 ? "" : "s"} ago`;
      check.textContent = `checked ${when}: ${runs[0].verdict}, ${(runs[0].up_kbps / 1000).toFixed(1)} Mbit/s up`;
    }).catch(() => { check.textContent = ""; });
  }
  document.querySelector(".empty").hidden = bookings.length > 0;
  const people = document.querySelector("[data-testid=people] tbody");
  for (const c of clients) {
    people.append(Object.assign(el("tr"), {}));
    people.lastChild.append(el("td", c.name), el("td", String(c.age_today)),
      el("td", c.guardians.map((g) => g.name + (g.parental_responsibility ? " (PR)" : "")).join(", ")));
  }
}

const ALERTED = ["manager", "safeguarding", "head_of_service"]; // who overdue check-out alerts reach

async function showOverdue() {
  // policies/002_*, 003_*: a practitioner not back from a visit; the alert's link brings people here.
  const section = document.getElementById("overdue");
  const list = section.querySelector("ol");
  const visits = await api("GET", "/api/v1/visits/overdue");
  section.hidden = visits.length === 0;
  list.replaceChildren(...visits.map((v) => {
    const item = el("li", undefined, { class: "card", "data-testid": `overdue-${v.booking_id}` });
    const back = v.checked_out_at ? `checked out at ${time(v.checked_out_at)}` : "NOT BACK";
    item.append(el("h3", `${v.practitioner}: expected back ${time(v.expected_return)}, ${back}`),
      el("p", `Visit address: ${v.address || "not recorded"}. Phone: ${v.phone || "not recorded"}. ` +
        `Vehicle: ${v.vehicle || "not recorded"}.`));
    for (const a of v.alerts) {
      const who = a.acknowledged_at ? `, acknowledged at ${time(a.acknowledged_at)}` : "";
      item.append(el("p", `${a.stage} alert sent at ${time(a.sent_at)}${who}`, { "data-testid": "overdue-alert" }));
    }
    if (v.alerts.some((a) => !a.acknowledged_at)) {
      const button = el("button", "Acknowledge: I am dealing with this", { "data-testid": "acknowledge" });
      button.addEventListener("click", async () => {
        try {
          await api("POST", `/api/v1/visits/${v.booking_id}/acknowledge`);
          await showOverdue();
        } catch (e) { error.textContent = e.message; }
      });
      item.append(button);
    }
    return item;
  }));
}

const ACTIONS = { // what a manager gives, and where: the API checks who may (evening work: managers only)
  "evening agreement": { field: "reason", label: "Why this evening work is agreed", button: "Agree to evening work",
    path: (id) => `/api/v1/bookings/${id}/evening-agreement`, roles: ["manager"] },
  authorisation: { field: "purpose", label: "Purpose of the visit", button: "Authorise the visit",
    path: (id) => `/api/v1/visits/${id}/authorise`, roles: ["manager", "safeguarding"] },
};

async function showWaiting(me) {
  // policies/000_*-003_*: evening work after a day unavailable, and every visit, wait for a manager.
  const section = document.getElementById("waiting");
  const waiting = await api("GET", "/api/v1/bookings/waiting");
  section.hidden = waiting.length === 0;
  section.querySelector("ol").replaceChildren(...waiting.map((w) => {
    const action = ACTIONS[w.needs];
    const day = new Date(w.starts_at).toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short" });
    const item = el("li", undefined, { class: "card", "data-testid": `waiting-${w.booking_id}` });
    item.append(el("h3", `${day} ${time(w.starts_at)}: ${w.kind.replaceAll("_", " ")} with ${w.client} ` +
      `(${w.practitioner})`), el("p", `Needs ${w.needs}: ${w.reason}.`));
    if (action && me.staff.roles.some((r) => action.roles.includes(r))) {
      const form = el("form");
      const input = el("input", undefined, { name: action.field, required: "", minlength: "5",
        "aria-label": action.label, placeholder: action.label, "data-testid": "waiting-text" });
      form.append(input, el("button", action.button, { type: "submit", "data-testid": "waiting-submit" }));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.textContent = "";
        try {
          await api("POST", action.path(w.booking_id), { [action.field]: input.value });
          await showWaiting(me);
        } catch (e) { error.textContent = e.message; }
      });
      item.append(form);
    }
    return item;
  }));
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("POST", "/api/v1/auth/logout").catch(() => {});
  window.location.assign("/login");
});

load().catch((e) => {
  if (e.status === 401) window.location.assign("/login");
  else error.textContent = e.message;
});
