import { api, el, setCsrf } from "./http.js";

const error = document.getElementById("error");
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function time(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", timeZone: zone });
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

document.getElementById("logout").addEventListener("click", async () => {
  await api("POST", "/api/v1/auth/logout").catch(() => {});
  window.location.assign("/login");
});

load().catch((e) => {
  if (e.status === 401) window.location.assign("/login");
  else error.textContent = e.message;
});
