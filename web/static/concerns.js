// Staff page /concerns: the concerns the viewer may read, each with its 24-hour discussion clock.
// The server says how long each concern has left (discuss_in_ms, by its clock); the page only adds the time
// elapsed since it asked (performance.now()), so a device whose clock is wrong still shows the right time.
import { api, setCsrf } from "./http.js";

const REFRESH_MS = 5 * 60 * 1000; // ask again now and then: escalations, other people's discussions
const DISCUSSERS = ["manager", "safeguarding"]; // who may record the discussion (the API checks it again)
const error = document.getElementById("error");
const list = document.getElementById("concerns");
const template = document.getElementById("concern-card");
let me = null;
let cards = []; // { concern, node, fetchedAt }

function when(iso) {
  const d = new Date(iso);
  const time = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const day = d.toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
  return `${time} on ${day}`;
}

function span(minutes) {
  const h = Math.floor(minutes / 60), m = minutes % 60;
  if (h >= 48) return `${Math.floor(h / 24)} days ${h % 24} h`;
  return h ? `${h} h ${m} min` : `${m} min`;
}

function clockText(concern, left) {
  // Counting down, a part-minute counts as a whole one; overdue, only whole minutes count.
  if (left > 0) return `Discuss with a manager within ${span(Math.ceil(left / 60000))}`;
  const overdue = `Overdue by ${span(Math.floor(-left / 60000))}`;
  return concern.escalated_at ? `${overdue}. Escalated at ${when(concern.escalated_at)}.` : overdue;
}

function tick() {
  const now = performance.now();
  for (const { concern, node, fetchedAt } of cards) {
    if (concern.discussed_at) continue;
    const left = concern.discuss_in_ms - (now - fetchedAt);
    const clock = node.querySelector(".clock");
    const text = clockText(concern, left);
    if (clock.textContent !== text) clock.textContent = text;
    clock.classList.toggle("overdue", left <= 0);
  }
}

function fill(node, concern) {
  node.dataset.concernId = concern.id;
  const category = concern.category.replaceAll("_", " ");
  node.querySelector(".title").textContent = `${category[0].toUpperCase()}${category.slice(1)} (concern ${concern.id})`;
  node.querySelector(".raised").textContent = `Raised at ${when(concern.raised_at)} by ${concern.raised_by_name}`;
  node.querySelector(".details").textContent = concern.details;
  const done = Boolean(concern.discussed_at);
  node.querySelector(".clock").hidden = done;
  const discussed = node.querySelector(".discussed");
  discussed.hidden = !done;
  if (done) {
    const late = new Date(concern.discussed_at) > new Date(concern.discuss_by) ? " (after the 24 hours)" : "";
    discussed.textContent = `Discussed at ${when(concern.discussed_at)} by ${concern.discussed_with_name}${late}`;
  }
  const note = node.querySelector(".note");
  note.hidden = !concern.discussion_note;
  note.textContent = concern.discussion_note ? `Discussion: ${concern.discussion_note}` : "";
  node.querySelector(".discuss").hidden = done || !me.staff.roles.some((r) => DISCUSSERS.includes(r));
}

function card(concern, fetchedAt) {
  const node = template.content.firstElementChild.cloneNode(true);
  const entry = { concern, node, fetchedAt };
  fill(node, concern);
  node.querySelector(".discuss").addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const button = event.target.querySelector("button");
    button.disabled = true;
    try {
      const updated = await api("POST", `/api/v1/concerns/${entry.concern.id}/discussed`,
        { note: event.target.note.value });
      Object.assign(entry, { concern: updated, fetchedAt: performance.now() });
      fill(node, updated);
    } catch (e) {
      error.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  return entry;
}

async function load() {
  me = await api("GET", "/api/v1/me");
  if (me.needs_second_factor) { window.location.assign("/login"); return; }
  setCsrf(me.csrf_token);
  document.getElementById("who").textContent = me.staff.name;
  const concerns = await api("GET", "/api/v1/concerns");
  const fetchedAt = performance.now();
  const everyone = me.staff.roles.some((r) => DISCUSSERS.includes(r));
  document.getElementById("scope").textContent = everyone
    ? "Every concern, newest first. Each must be discussed with a manager within 24 hours of being raised."
    : "The concerns you raised, newest first. A manager discusses each within 24 hours.";
  cards = concerns.map((c) => card(c, fetchedAt));
  list.replaceChildren(...cards.map((c) => c.node));
  document.querySelector(".empty").hidden = concerns.length > 0;
  tick();
}

function typing() {
  return [...document.querySelectorAll("textarea")].some((t) => t.value.trim() !== "");
}

const raise = document.getElementById("raise-form");
// Arriving from the after-visit record (/concerns?booking=N): the concern is about that visit.
const asked = new URLSearchParams(window.location.search).get("booking") || "";
const aboutVisit = /^[0-9]{1,9}$/.test(asked) ? asked : null;
if (aboutVisit) {
  raise.closest("details").open = true;
  document.getElementById("raise-about").textContent = `About visit ${aboutVisit}.`;
}

async function loadClients() {
  const select = raise.elements.client_id;
  for (const c of await api("GET", "/api/v1/clients")) {
    const option = document.createElement("option");
    option.value = String(c.id);
    option.textContent = c.name;
    select.append(option);
  }
}

raise.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const body = { category: raise.elements.category.value, details: raise.elements.details.value };
  if (aboutVisit) body.booking_id = Number(aboutVisit);
  if (raise.elements.client_id.value) body.client_id = Number(raise.elements.client_id.value);
  try {
    await api("POST", "/api/v1/concerns", body);
    raise.reset();
    raise.closest("details").open = false;
    await load();
  } catch (e) { error.textContent = e.message; }
});

function refresh() {
  if (typing()) return; // never throw away a note being written
  load().catch((e) => { error.textContent = e.message; });
}

load().then(() => {
  loadClients().catch((e) => { error.textContent = e.message; });
  setInterval(tick, 1000);
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
}).catch((e) => {
  if (e.status === 401) window.location.assign("/login");
  else error.textContent = e.message;
});
