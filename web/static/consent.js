// The family's consent page: the privacy notice, three scopes, save and one-click withdrawal.
import { api, el, setCsrf } from "./http.js";

const bookingId = window.location.pathname.split("/")[2];
const form = document.getElementById("consent-form");
const error = document.getElementById("error");
const status = document.getElementById("status");
const whyNot = document.getElementById("why-not");
const withdraw = document.getElementById("withdraw");
let subjects = [];

function current() {
  return subjects.find((s) => s.covers === form.covers.value) || subjects[0];
}

function show() {
  const subject = current();
  if (!subject) return;
  for (const scope of ["record", "safeguarding", "feedback"]) {
    form[scope].checked = subject.scopes.includes(scope);
    form[scope].disabled = !subject.may_consent;
  }
  whyNot.textContent = subject.may_consent ? "" : subject.why_not;
  form.querySelector("[data-testid=consent-submit]").disabled = !subject.may_consent;
  withdraw.disabled = subject.scopes.length === 0;
  status.textContent = subject.scopes.length
    ? `Consent in force for ${subject.label}: ${subject.scopes.join(", ")}.`
    : `No consent in force for ${subject.label}.`;
}

async function load(keep) {
  const state = await api("GET", `/s/${bookingId}/api/consent`);
  const notice = document.getElementById("notice");
  notice.replaceChildren();
  for (const section of state.notice) {
    notice.append(el("h2", section.heading), el("p", section.text));
  }
  document.getElementById("notice-version").textContent = `Privacy notice version ${state.notice_version}`;
  subjects = state.subjects;
  form.covers.replaceChildren(...subjects.map((s) => el("option", s.label, { value: s.covers })));
  if (keep) form.covers.value = keep;
  document.getElementById("covers-label").hidden = subjects.length < 2;
  show();
}

form.covers.addEventListener("change", show);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const covers = form.covers.value;
  try {
    await api("POST", `/s/${bookingId}/api/consent`, {
      covers, record: form.record.checked, safeguarding: form.safeguarding.checked,
      feedback: form.feedback.checked,
    });
    await load(covers);
    status.textContent = `Saved. ${status.textContent}`;
  } catch (e) { error.textContent = e.message; }
});

withdraw.addEventListener("click", async () => {
  error.textContent = "";
  const covers = form.covers.value;
  try {
    await api("POST", `/s/${bookingId}/api/consent/withdraw`, { covers });
    await load(covers);
    status.textContent = `Consent withdrawn. ${status.textContent}`;
  } catch (e) { error.textContent = e.message; }
});

async function start() {
  const ctx = await api("GET", `/s/${bookingId}/api/context`);
  setCsrf(ctx.csrf_token);
  await load();
}

start().catch((e) => { error.textContent = e.message; });
