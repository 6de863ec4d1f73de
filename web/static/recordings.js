import { api, el, setCsrf } from "./http.js";

const error = document.getElementById("error");
const form = document.getElementById("view-form");
let chosen = null;

async function load() {
  const me = await api("GET", "/api/v1/me");
  setCsrf(me.csrf_token);
  const body = document.querySelector("[data-testid=recordings] tbody");
  for (const r of await api("GET", "/api/v1/recordings")) {
    const row = el("tr");
    row.append(el("td", r.client), el("td", r.practitioner), el("td", new Date(r.started_at).toLocaleString()),
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
