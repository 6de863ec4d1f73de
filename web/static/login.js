import { api, setCsrf } from "./http.js";

const loginForm = document.getElementById("login-form");
const codeForm = document.getElementById("code-form");
const error = document.getElementById("login-error");

function after(me) {
  setCsrf(me.csrf_token);
  if (me.needs_second_factor) {
    loginForm.hidden = true;
    codeForm.hidden = false;
    codeForm.code.focus();
    return;
  }
  window.location.assign("/dashboard");
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    after(await api("POST", "/api/v1/auth/login", {
      email: loginForm.email.value, password: loginForm.password.value,
    }));
  } catch (e) { error.textContent = e.message; }
});

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    after(await api("POST", "/api/v1/auth/second-factor", { code: codeForm.code.value }));
  } catch (e) { error.textContent = e.message; }
});
