// Dashboard section "Emails not delivered" (admin/manager): a permanent failure needs a person;
// admins can resend the invitee a fresh link (the old one is revoked).
import { api, el, setCsrf } from "./http.js";

async function loadFailed() {
  const me = await api("GET", "/api/v1/me");
  const roles = me.staff?.roles || [];
  if (!roles.includes("admin") && !roles.includes("manager")) return;
  setCsrf(me.csrf_token);
  const failed = await api("GET", "/api/v1/mail/failed");
  const section = document.getElementById("mail-failed");
  const body = section.querySelector("tbody");
  section.hidden = failed.length === 0;
  for (const f of failed) {
    const row = el("tr", undefined, { "data-testid": `mail-failed-${f.id}` });
    row.append(el("td", f.recipient), el("td", f.subject), el("td", f.error));
    const cell = el("td");
    if (roles.includes("admin") && f.booking_id && f.invitee) {
      const button = el("button", "Resend link", { type: "button", "data-testid": `resend-${f.id}` });
      button.addEventListener("click", async () => {
        try {
          await api("POST", `/api/v1/bookings/${f.booking_id}/resend`, { subject: f.invitee });
          button.replaceWith(el("span", "New link sent"));
        } catch (e) { document.getElementById("error").textContent = e.message; }
      });
      cell.append(button);
    }
    row.append(cell);
    body.append(row);
  }
}

loadFailed().catch((e) => {
  if (e.status !== 401) document.getElementById("error").textContent = e.message;
});
