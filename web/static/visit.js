// The practitioner's phone page for lone working: itinerary, check-in, no-show, check-out, safety cancel.
import { api, setCsrf } from "./http.js";

const error = document.getElementById("error");
const list = document.getElementById("visits");
const template = document.getElementById("visit-card");

function hhmm(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

function atTime(iso, value) {
  // The given HH:MM on the visit's local day, as an ISO string with offset (via Date in local time).
  const day = new Date(iso);
  const [h, m] = value.split(":").map(Number);
  day.setHours(h, m, 0, 0);
  return day.toISOString();
}

function statusText(v) {
  if (v.outcome === "no_show") return "No-show recorded. You have left.";
  if (v.outcome === "cancelled_safety") return `Cancelled over safety: ${v.outcome_reason}`;
  if (v.checked_out_at) return `Checked out at ${hhmm(v.checked_out_at)}.`;
  if (v.checked_in_at) return `Checked in at ${hhmm(v.checked_in_at)}. Expected back ${hhmm(v.expected_return)}.`;
  if (v.status !== "confirmed") return "Waiting for authorisation: this visit cannot take place yet.";
  if (v.expected_return) return `Itinerary saved: back by ${hhmm(v.expected_return)}.`;
  return "Record your itinerary before you leave.";
}

async function act(visit, path, body) {
  error.textContent = "";
  try {
    await api("POST", `/api/v1/visits/${visit.booking_id}/${path}`, body);
    await load();
  } catch (e) { error.textContent = e.message; }
}

function card(v) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.dataset.bookingId = v.booking_id;
  node.querySelector(".when").textContent = `${hhmm(v.starts_at)}–${hhmm(v.ends_at)} ${v.kind.replace("_", " ")}`;
  node.querySelector(".where").textContent = v.address || "(no address recorded)";
  node.querySelector(".status").textContent = statusText(v);
  if (v.blocked_reason) {
    const blocked = node.querySelector(".blocked");
    blocked.hidden = false;
    blocked.textContent = v.blocked_reason;
  }
  const finished = Boolean(v.checked_out_at);
  node.querySelector(".itinerary").hidden = finished || Boolean(v.checked_in_at);
  node.querySelector(".safety").hidden = finished;
  for (const button of node.querySelectorAll("[data-action]")) {
    const action = button.dataset.action;
    button.hidden = finished || (action === "check-in" ? Boolean(v.checked_in_at) : !v.checked_in_at);
    button.addEventListener("click", () => act(v, action));
  }
  node.querySelector(".itinerary").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act(v, "itinerary", { expected_arrival: atTime(v.starts_at, form.arrival.value),
                          expected_return: atTime(v.starts_at, form.return.value) });
  });
  node.querySelector(".safety").addEventListener("submit", (event) => {
    event.preventDefault();
    act(v, "safety-cancel", { reason: event.target.reason.value });
  });
  if (finished) showAfterVisit(node, v).catch((e) => { error.textContent = e.message; });
  return node;
}

async function showAfterVisit(node, v) {
  // policies/002_*: after the visit, the record; with safeguarding concerns, a concern raised about it.
  let record = null;
  try {
    record = await api("GET", `/api/v1/visits/${v.booking_id}/record`);
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  const form = node.querySelector(".after");
  form.hidden = record !== null;
  if (record !== null) {
    const done = node.querySelector(".after-done");
    done.hidden = false;
    done.textContent = `After-visit record saved at ${hhmm(record.recorded_at)}` +
      (record.concern_ids.length ? `; concern ${record.concern_ids.join(", ")} raised about this visit.` : ".");
    const raise = node.querySelector(".after-raise");
    raise.hidden = !(record.safeguarding_concerns && record.concern_ids.length === 0);
    raise.querySelector("a").href = `/concerns?booking=${v.booking_id}`;
    return;
  }
  form.onsubmit = async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api("POST", `/api/v1/visits/${v.booking_id}/record`,
        { notes: form.notes.value, safeguarding_concerns: form.concerns.value === "yes" });
      await showAfterVisit(node, v);
    } catch (e) { error.textContent = e.message; }
  };
}

async function load() {
  const me = await api("GET", "/api/v1/me");
  setCsrf(me.csrf_token);
  document.getElementById("who").textContent = me.staff.name;
  const visits = await api("GET", "/api/v1/visits/mine");
  list.replaceChildren(...visits.map(card));
  document.querySelector(".empty").hidden = visits.length > 0;
}

load().catch((e) => { error.textContent = e.message; });
