// The recording indicator everyone sees, and the practitioner's record toggle (docs/consent-and-recording.md).
const duet = window.duet;
const state = document.createElement("p");
state.dataset.testid = "recording-state";
state.className = "recording";
state.setAttribute("role", "status");
state.textContent = "Not recording";
const toggle = document.createElement("button");
toggle.dataset.testid = "record";
toggle.hidden = true;
toggle.textContent = "Start recording";
let recording = false;
duet.recordingSlot.append(state, toggle);

duet.on("welcome", (message) => { toggle.hidden = message.role !== "host"; });
duet.on("recording", (message) => {
  state.textContent = message.label;
  state.dataset.state = message.state;
  recording = message.state === "recording";
  toggle.textContent = recording ? "Stop recording" : (message.state === "paused" ? "Resume recording" : "Start recording");
  toggle.setAttribute("aria-pressed", String(recording));
});
toggle.addEventListener("click", () => duet.send({ type: "record", on: !recording }));
