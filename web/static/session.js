// The session page: the lobby (when, window, local preview) and the join button that starts the call.
import { api, setCsrf } from "./http.js";
import { Call } from "./call.js";

const bookingId = window.location.pathname.split("/")[2];
const error = document.getElementById("error");

async function load() {
  const ctx = await api("GET", `/s/${bookingId}/api/context`);
  setCsrf(ctx.csrf_token);
  const start = new Date(ctx.starts_at);
  const end = new Date(ctx.ends_at);
  const fmt = { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" };
  document.getElementById("title").textContent = `Hello ${ctx.you}`;
  document.getElementById("when").textContent =
    `Session with ${ctx.client_first_name}: ${start.toLocaleString([], fmt)} to ${end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  const words = {
    not_yet: "The session has not opened yet. You can join a few minutes before it starts.",
    open: "The session is open.",
    closed: "This session has ended.",
  };
  document.getElementById("window").textContent = words[ctx.window];
  document.body.dataset.window = ctx.window;
  return ctx;
}

// window.duet: hooks for other page modules (recording indicator) and for the browser tests.
const call = new Call(bookingId, (message) => { error.textContent = message; });
window.duet = {
  on: (type, fn) => call.on(type, fn),
  send: (message) => call.send(message),
  stats: () => call.stats(),
  state: () => call.pc && [call.pc.signalingState, call.pc.iceConnectionState,
    call.pc.getTransceivers().map((t) => `${t.mid}:${t.currentDirection}`).join(" ")],
  recordingSlot: document.getElementById("recording-slot"),
};

export const ready = load().then(async (ctx) => {
  if (ctx.window !== "open") return ctx;
  const join = document.getElementById("join");
  join.disabled = false;
  join.addEventListener("click", () => {
    join.disabled = true;
    call.start().catch((e) => { error.textContent = e.message; join.disabled = false; });
  });
  // A preview for anyone who will publish; a safeguarding lead observing (role "staff" but not the
  // practitioner) is told by the server on joining and their devices are released then.
  await call.preview(ctx.kind === "live_audio").catch((e) => {
    error.textContent = `Your camera or microphone could not be opened: ${e.message}`;
  });
  return ctx;
}).catch((e) => { error.textContent = e.message; });
