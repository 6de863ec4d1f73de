// A parent or adult client raises a concern through their session link (policies/000_*, 004_*).
import { api, setCsrf } from "./http.js";

const bookingId = window.location.pathname.split("/")[2];
const error = document.getElementById("error");
const form = document.getElementById("concern-form");

async function load() {
  const ctx = await api("GET", `/s/${bookingId}/api/context`);
  setCsrf(ctx.csrf_token);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    const receipt = await api("POST", `/s/${bookingId}/api/concern`,
                              { category: form.category.value, details: form.details.value });
    form.hidden = true;
    const shown = document.getElementById("receipt");
    shown.hidden = false;
    shown.textContent = `${receipt.message} (reference ${receipt.id})`;
  } catch (e) { error.textContent = e.message; }
});

load().catch((e) => { error.textContent = e.message; });
