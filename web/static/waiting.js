// Countdown on the waiting page; reloads into the lobby when the join window opens.
const el = document.getElementById("countdown");
const opensAt = Number(el?.dataset.opensAt || 0);

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
  const left = opensAt - Date.now();
  if (left <= 0) { window.location.reload(); return; }
  el.textContent = words(left);
  setTimeout(tick, Math.min(30000, Math.max(1000, left)));
}

if (el && opensAt) tick();
