// Countdown on the waiting page; reloads into the lobby when the join window opens.
// The server says how long until it opens: the device's own clock may be wrong, so only elapsed time counts.
const el = document.getElementById("countdown");
const opensIn = Number(el?.dataset.opensIn || 0);
const opensAt = performance.now() + opensIn;

function words(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600), m = Math.floor((total % 3600) / 60);
  const parts = [];
  if (d) parts.push(`${d} day${d === 1 ? "" : "s"}`);
  if (h) parts.push(`${h} hour${h === 1 ? "" : "s"}`);
  if (!d) parts.push(`${m} minute${m === 1 ? "" : "s"}`);
  return `opens in ${parts.join(" ")}`;
}

function tick() {
  const left = opensAt - performance.now();
  if (left <= 0) { window.location.reload(); return; }
  el.textContent = words(left);
  setTimeout(tick, Math.min(30000, Math.max(1000, left)));
}

if (el && opensIn > 0) tick();
