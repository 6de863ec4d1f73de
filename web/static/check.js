// The device and network check, in the family's browser. Measurements go to the server, which decides.
import { api, el, setCsrf } from "./http.js";

const bookingId = window.location.pathname.split("/")[2];
const $ = (id) => document.getElementById(id);
const step = (text) => $("steps").append(el("li", text));

async function measureMicrophone(stream, ms = 1500) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  context.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  let peak = -120;
  let floor = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    analyser.getFloatTimeDomainData(data);
    let max = 0;
    let sum = 0;
    for (const v of data) { max = Math.max(max, Math.abs(v)); sum += v * v; }
    const peakDb = 20 * Math.log10(max || 1e-6);
    const rmsDb = 10 * Math.log10(sum / data.length || 1e-12);
    peak = Math.max(peak, peakDb);
    floor = Math.min(floor, rmsDb);
    $("level").value = Math.max(-90, peakDb);
    await new Promise((r) => setTimeout(r, 50));
  }
  await context.close();
  return { peak, floor };
}

function askSpeakers() {
  const context = new AudioContext();
  const tone = context.createOscillator();
  tone.frequency.value = 440;
  tone.connect(context.destination);
  tone.start();
  $("speakers").hidden = false;
  return new Promise((resolve) => {
    const answer = (heard) => { tone.stop(); context.close(); $("speakers").hidden = true; resolve(heard); };
    $("heard").onclick = () => answer(true);
    $("not-heard").onclick = () => answer(false);
  });
}

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
}

async function measureNetwork() {
  const pc = new RTCPeerConnection();
  const channel = pc.createDataChannel("echo");
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const answer = await api("POST", `/s/${bookingId}/check/api/offer`, { sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  await new Promise((resolve, reject) => {
    channel.onopen = resolve;
    setTimeout(() => reject(new Error("Could not reach the session server: check your connection.")), 10000);
  });
  const replies = new Map();
  channel.onmessage = (e) => { if (typeof e.data === "string") replies.set(e.data, performance.now()); };
  const sent = [];
  for (let i = 0; i < 20; i++) {
    const id = `p${i}`;
    sent.push([id, performance.now()]);
    channel.send(id);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rtts = sent.filter(([id]) => replies.has(id)).map(([id, t]) => replies.get(id) - t);
  const rtt = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 60000;
  const jitter = rtts.length > 1 ? rtts.slice(1).reduce((a, v, i) => a + Math.abs(v - rtts[i]), 0) / (rtts.length - 1) : 0;
  // Throughput: 512 KiB out, echoed back by the server (it never sends more than it received).
  const block = new Uint8Array(16 * 1024);
  let echoed = 0;
  const total = 32 * block.length;
  const done = new Promise((resolve) => {
    channel.onmessage = (e) => { if (typeof e.data !== "string") { echoed += e.data.byteLength || e.data.size; if (echoed >= total) resolve(); } };
    setTimeout(resolve, 15000);
  });
  channel.binaryType = "arraybuffer";
  const start = performance.now();
  for (let i = 0; i < 32; i++) channel.send(block);
  await done;
  const seconds = (performance.now() - start) / 1000;
  const kbps = (echoed * 8) / 1000 / seconds;
  let path = "none";
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      const local = stats.get(s.localCandidateId);
      if (local) path = local.candidateType;
    }
  });
  pc.close();
  return { rtt_ms: rtt, jitter_ms: jitter, loss: 1 - rtts.length / sent.length, up_kbps: kbps, down_kbps: kbps, ice_path: path };
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function inboundVideo(pc) {
  const stats = await pc.getStats();
  let found = { framesDecoded: 0, bytesReceived: 0, timestamp: 0 };
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      found = { framesDecoded: s.framesDecoded || 0, bytesReceived: s.bytesReceived || 0, timestamp: s.timestamp };
    }
  });
  return found;
}

// The camera's own video, sent to the media server and straight back (relayed, not re-encoded):
// frames and bitrate received over 3 s, as getStats reports them.
async function measureLoopback(track) {
  const pc = new RTCPeerConnection();
  try {
    pc.addTransceiver(track, { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const started = await api("POST", `/s/${bookingId}/check/api/loopback`, { sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: "answer", sdp: started.answer });
    await pc.setRemoteDescription({ type: "offer", sdp: started.offer });
    await pc.setLocalDescription(await pc.createAnswer());
    await api("POST", `/s/${bookingId}/check/api/loopback/${started.probe}/answer`, { sdp: pc.localDescription.sdp });
    await pause(1000);
    const first = await inboundVideo(pc);
    await pause(3000);
    const last = await inboundVideo(pc);
    const seconds = (last.timestamp - first.timestamp) / 1000;
    if (!first.timestamp || seconds <= 0) return { loopback_fps: 0, loopback_kbps: 0 };
    return {
      loopback_fps: (last.framesDecoded - first.framesDecoded) / seconds,
      loopback_kbps: ((last.bytesReceived - first.bytesReceived) * 8) / 1000 / seconds,
    };
  } finally {
    pc.close();
  }
}

async function run() {
  $("start").disabled = true;
  $("steps").replaceChildren();
  $("verdict").textContent = "";
  $("reasons").replaceChildren();
  const form = $("declaration");
  if (!form.reportValidity()) { $("start").disabled = false; return; }
  const m = { webrtc: typeof RTCPeerConnection === "function", camera_width: 0, camera_height: 0, camera_fps: 0,
    mic_peak_dbfs: -120, mic_floor_dbfs: -120, speakers_heard: false, rtt_ms: 60000, jitter_ms: 0, loss: 1,
    up_kbps: 0, down_kbps: 0, ice_path: "none" };
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("preview").srcObject = stream;
    const settings = stream.getVideoTracks()[0]?.getSettings() || {};
    Object.assign(m, { camera_width: settings.width || 0, camera_height: settings.height || 0,
      camera_fps: settings.frameRate || 0 });
    step(`Camera: ${m.camera_width}x${m.camera_height} at ${Math.round(m.camera_fps)} frames a second`);
    const level = await measureMicrophone(stream);
    Object.assign(m, { mic_peak_dbfs: level.peak, mic_floor_dbfs: level.floor });
    step(`Microphone: loudest ${Math.round(level.peak)} dBFS`);
    m.speakers_heard = await askSpeakers();
    step(m.speakers_heard ? "Speakers: you heard the tone" : "Speakers: no tone heard");
  } catch (e) {
    step(`Camera or microphone could not be opened (${e.name}).`);
  }
  if (m.webrtc) {
    try {
      Object.assign(m, await measureNetwork());
      step(`Connection: ${Math.round(m.rtt_ms)} ms round trip, ${(m.up_kbps / 1000).toFixed(1)} Mbit/s, path ${m.ice_path}`);
    } catch (e) { step(e.message); }
    const camera = stream?.getVideoTracks()[0];
    if (camera) {
      try {
        Object.assign(m, await measureLoopback(camera));
        step(`Your video back from our server: ${Math.round(m.loopback_fps)} frames a second, `
          + `${Math.round(m.loopback_kbps)} kbit/s`);
      } catch (e) { step(`Video test: ${e.message}`); }
    }
  }
  stream?.getTracks().forEach((t) => t.stop());
  const data = new FormData(form);
  const result = await api("POST", `/s/${bookingId}/check/api/results`, { ...m, device: data.get("device"),
    shared_with: data.get("shared_with") || "", safeguarding_measures: data.get("safeguarding_measures") || "",
    headphones: data.get("headphones") === "on" });
  $("verdict").textContent = result.verdict;
  result.reasons.forEach((r) => $("reasons").append(el("li", r)));
  $("music").textContent = result.music_advisable ? "Music mode is advisable on this device."
    : `Music mode: ${result.music_reasons.join(" ")}`;
  $("start").disabled = false;
}

async function load() {
  const ctx = await api("GET", `/s/${bookingId}/api/context`);
  setCsrf(ctx.csrf_token);
}

$("start").addEventListener("click", () => run().catch((e) => { $("error").textContent = e.message; $("start").disabled = false; }));
load().catch((e) => { $("error").textContent = e.message; });
