import { api, el, setCsrf } from "./http.js";

const error = document.getElementById("error");
const form = document.getElementById("view-form");
let chosen = null;
const USES = { record: "recorded", safeguarding: "safeguarding and quality monitoring", feedback: "teaching feedback" };

async function load() {
  const me = await api("GET", "/api/v1/me");
  setCsrf(me.csrf_token);
  const body = document.querySelector("[data-testid=recordings] tbody");
  for (const r of await api("GET", "/api/v1/recordings")) {
    const row = el("tr");
    const length = r.duration_seconds === null ? (r.status === "interrupted" ? "interrupted" : "")
      : `${Math.floor(r.duration_seconds / 60)}:${String(r.duration_seconds % 60).padStart(2, "0")}`;
    const uses = r.consent_scopes.length ? r.consent_scopes.map((s) => USES[s] || s).join(", ") : "no use (consent withdrawn or lapsed)";
    const holds = r.holds.map((h) => `${h.kind === "legal" ? "Legal hold" : "Safeguarding hold"}: ${h.reason}`).join("; ");
    row.append(el("td", r.client), el("td", r.practitioner), el("td", new Date(r.started_at).toLocaleString()),
      el("td", length, { "data-testid": `length-${r.id}` }), el("td", uses, { "data-testid": `uses-${r.id}` }),
      el("td", holds || "none", { "data-testid": `holds-${r.id}` }),
      el("td", r.erased_at ? "erased" : r.status), el("td", r.erase_at ? r.erase_at.slice(0, 10) : ""));
    const cell = el("td");
    if (!r.erased_at) {
      const play = el("button", "View", { "data-testid": `view-${r.id}` });
      play.addEventListener("click", () => { chosen = r.id; form.hidden = false; form.reason.focus(); });
      cell.append(play);
    }
    row.append(cell);
    body.append(row);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    const view = await api("POST", `/api/v1/recordings/${chosen}/views`, { reason: form.reason.value });
    const player = document.getElementById("player");
    player.src = view.media_url;
    player.hidden = false;
    if (!view.complete) error.textContent = "This recording was interrupted: it plays up to its last saved part.";
  } catch (e) { error.textContent = e.message; }
});

load().catch((e) => { error.textContent = e.message; });
