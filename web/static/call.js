// One person's live session: the WebSocket, one RTCPeerConnection, tiles, controls and chat.
// The browser offers once (its tracks, or a data channel for an observer); after that only the server offers.
// Lost network: ask the server to "rejoin" and offer again on a new peer connection (aiortc has no ICE restart).
import { el } from "./http.js";

const FINAL_CLOSE = new Set([1008, 4000, 4403, 4409, 4410]);
const $ = (id) => document.getElementById(id);

function stereoAnswer(sdp) {
  // Chrome decodes stereo only when its own answer says so (docs/media.md, music mode).
  const opus = /a=rtpmap:(\d+) opus\/48000/i.exec(sdp);
  if (!opus) return sdp;
  return sdp.replace(new RegExp(`a=fmtp:${opus[1]} ([^\\r\\n]*)`), (line, params) =>
    params.includes("stereo=1") ? line : `a=fmtp:${opus[1]} ${params};stereo=1;sprop-stereo=1`);
}

function extensionIds(sdp) {
  const ids = new Map();
  for (const [, id, uri] of sdp.matchAll(/^a=extmap:(\d+)(?:\/\w+)? (\S+)/gm)) ids.set(uri, id);
  return ids;
}

function withOurExtensionIds(sdp, ids) {
  // Chrome refuses a later offer that gives a header-extension id a new meaning on the bundled transport;
  // aiortc numbers its own, so map its ids onto ours by URI and drop any we never offered.
  return sdp.replace(/^a=extmap:(\d+)((?:\/\w+)?) (\S+)([^\r\n]*)\r?\n/gm, (line, id, dir, uri, rest) =>
    ids.has(uri) ? `a=extmap:${ids.get(uri)}${dir} ${uri}${rest}\r\n` : "");
}

export class Call {
  constructor(bookingId, showError) {
    this.bookingId = bookingId;
    this.showError = showError;
    this.listeners = new Map();
    this.queue = Promise.resolve();
    this.local = null;
    this.pc = null;
    this.ws = null;
    this.role = null;
    this.me = null;
    this.members = [];
    this.names = new Map();  // everyone seen in this session, so a removed person is still named
    this.audioOnly = false;
    this.musicMode = false;
    this.iceServers = [];
    this.finished = false;
    this.disconnectTimer = null;
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async preview(audioOnly) {
    this.audioOnly = audioOnly;
    if (this.local) return;
    this.local = await navigator.mediaDevices.getUserMedia(this.constraints());
    $("preview").srcObject = this.local;
  }

  constraints() {
    const audio = this.musicMode
      ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 2 }
      : { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    return { audio, video: this.audioOnly ? false : { width: 640, height: 480 } };
  }

  async start() {
    this.wireControls();
    this.connect();
  }

  connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}/s/${this.bookingId}/ws`);
    this.ws = ws;
    this.setState("Connecting…");
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "members") { this.showMembers(message.members); }  // never behind a negotiation
      this.queue = this.queue.then(() => this.handle(message)).catch((e) => this.showError(e.message));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.finished) return;
      if (FINAL_CLOSE.has(event.code)) { this.finish(event.reason || "The session closed."); return; }
      this.setState("Reconnecting…");  // the network dropped: a new socket, then a fresh join
      setTimeout(() => { if (!this.finished) this.connect(); }, 1000);
    };
  }

  async handle(message) {
    for (const fn of this.listeners.get(message.type) || []) {
      try { fn(message); } catch (e) { console.error(e); }
    }
    switch (message.type) {
      case "welcome": return this.welcome(message);
      case "answer": return this.pc && this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      case "offer": return this.answerOffer(message);
      case "chat": return this.addChat(message);
      case "rejoin_ready": return this.newPeerConnection();
      case "music_mode": return this.switchMusicMode(message.on);
      case "muted_by_host": return this.mutedByHost(message);
      case "removed_list": return this.showRemoved(message.participants);
      case "left":
        if (message.participant_id === this.me && !["left", "rejoining", "removed"].includes(message.reason)) {
          return this.newPeerConnection();  // the relay dropped our connection: offer again
        }
        return undefined;
      case "removed": case "ended": case "replaced":
        return this.finish(message.reason || message.detail);
      case "error": this.showError(message.detail); return undefined;
      default: return undefined;
    }
  }

  async welcome(message) {
    this.me = message.you;
    this.role = message.role;
    this.audioOnly = message.audio_only;
    this.iceServers = message.ice_servers;
    document.body.dataset.role = this.role;
    $("lobby").hidden = true;
    $("call").hidden = false;
    $("music-mode").hidden = this.role !== "host";
    $("end").hidden = this.role !== "host";
    $("chat-log").replaceChildren();
    for (const line of message.chat) this.addChat(line);
    if (this.role === "observer") {
      if (this.local) this.local.getTracks().forEach((t) => t.stop());
      this.local = null;
      $("mute").hidden = true;
      $("camera").hidden = true;
    } else if (message.music_mode !== this.musicMode || !this.local) {
      this.musicMode = message.music_mode;
      if (this.local) this.local.getTracks().forEach((t) => t.stop());
      this.local = null;
      await this.preview(this.audioOnly);
    }
    $("self").srcObject = this.local;
    $("music-mode").setAttribute("aria-pressed", String(this.musicMode));
    this.showMembers(message.members);
    await this.newPeerConnection();
  }

  async newPeerConnection() {
    if (this.pc) this.pc.close();
    for (const tile of document.querySelectorAll(".tile.remote")) tile.remove();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    if (this.local) {
      for (const track of this.local.getTracks()) pc.addTrack(track, this.local);
    } else {
      pc.createDataChannel("observer");  // an offer needs one m-line; media arrives in server offers
    }
    pc.ontrack = (event) => this.showTrack(event);
    pc.onconnectionstatechange = () => this.pc === pc && this.setState(pc.connectionState);
    pc.oniceconnectionstatechange = () => {
      if (this.pc !== pc) return;
      clearTimeout(this.disconnectTimer);
      if (pc.iceConnectionState === "failed") this.send({ type: "rejoin" });
      if (pc.iceConnectionState === "disconnected") {
        this.disconnectTimer = setTimeout(() => {
          if (this.pc === pc && pc.iceConnectionState !== "connected") this.send({ type: "rejoin" });
        }, 3000);
      }
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // aiortc 1.16 parses some header extensions with fixed sizes and its receive loop dies on Chrome's
    // (audio level): tell the relay about the mid extension only; it ignores ids it was not told about.
    const sdp = pc.localDescription.sdp.replace(/^a=extmap:\d+\S* (?!urn:ietf:params:rtp-hdrext:sdes:mid\b)[^\r\n]*\r?\n/gm, "");
    this.extIds = extensionIds(sdp);
    this.send({ type: "offer", sdp });
  }

  async answerOffer(message) {
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp: withOurExtensionIds(message.sdp, this.extIds) });
    const answer = await pc.createAnswer();
    if (this.musicMode) answer.sdp = stereoAnswer(answer.sdp);
    await pc.setLocalDescription(answer);
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  showTrack(event) {
    const stream = event.streams[0];
    if (!stream) return;
    const pid = stream.id;
    let tile = document.querySelector(`.tile.remote[data-participant="${CSS.escape(pid)}"]`);
    if (!tile) {
      tile = el("figure", undefined, { class: "tile remote", "data-participant": pid, "data-testid": "tile" });
      const media = el("video", undefined, { autoplay: "", playsinline: "" });
      tile.append(media, el("figcaption", this.nameOf(pid)));
      $("tiles").append(tile);
    }
    const media = tile.querySelector("video");
    if (media.srcObject !== stream) media.srcObject = stream;
    tile.classList.toggle("audio-only", stream.getVideoTracks().length === 0);
    this.addHostControls(tile, pid);
  }

  nameOf(pid) {
    const member = this.members.find((m) => m.id === pid);
    return member ? member.name : "";
  }

  addHostControls(tile, pid) {
    if (this.role !== "host" || tile.querySelector("button")) return;
    const caption = tile.querySelector("figcaption");
    const mute = el("button", "Mute", { type: "button", "data-testid": "host-mute" });
    mute.addEventListener("click", () => {
      const muted = mute.getAttribute("aria-pressed") !== "true";
      this.send({ type: "mute", participant: pid, kind: "audio", muted });
      mute.setAttribute("aria-pressed", String(muted));
      mute.textContent = muted ? "Unmute" : "Mute";
    });
    const remove = el("button", "Remove", { type: "button", "data-testid": "host-remove" });
    remove.addEventListener("click", () => this.send({ type: "remove", participant: pid }));
    caption.append(mute, remove);
  }

  showRemoved(pids) {
    // Whom the practitioner removed: they stay out, even if they open their link again, until let back in.
    const list = $("removed-list");
    list.replaceChildren();
    for (const pid of pids) {
      const back = el("button", "Let back in", { type: "button", "data-testid": "host-readmit" });
      back.addEventListener("click", () => this.send({ type: "readmit", participant: pid }));
      const item = el("li", `${this.names.get(pid) || pid} `);
      item.append(back);
      list.append(item);
    }
    $("removed").hidden = pids.length === 0;
  }

  showMembers(members) {
    this.members = members;
    for (const m of members) this.names.set(m.id, m.name);
    const observers = members.filter((m) => m.role === "observer");
    const banner = $("observer-banner");
    banner.hidden = observers.length === 0;
    banner.textContent = observers.length
      ? `${observers.map((m) => m.name).join(", ")} (safeguarding) is observing this session. They cannot be seen or heard.`
      : "";
    const present = new Set(members.map((m) => m.id));
    for (const tile of document.querySelectorAll(".tile.remote")) {
      const pid = tile.dataset.participant;
      if (!present.has(pid)) tile.remove();
      else tile.querySelector("figcaption").firstChild.textContent = this.nameOf(pid);
    }
  }

  addChat(message) {
    const time = new Date(message.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    $("chat-log").append(el("li", `${time} ${message.name}: ${message.text}`, { "data-testid": "chat-line" }));
    $("chat-log").lastChild.scrollIntoView({ block: "nearest" });
  }

  async switchMusicMode(on) {
    this.musicMode = on;
    $("music-mode").setAttribute("aria-pressed", String(on));
    $("notice").textContent = on ? "Music mode is on: no echo cancellation, stereo sound." : "Music mode is off.";
    if (this.role === "observer") return;
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    this.local = null;
    await this.preview(this.audioOnly);
    $("self").srcObject = this.local;
    this.send({ type: "rejoin" });  // a new peer connection with the new microphone settings
  }

  mutedByHost(message) {
    const track = this.local && this.local.getAudioTracks()[0];
    if (message.kind === "audio" && track) {
      track.enabled = !message.muted;
      $("mute").setAttribute("aria-pressed", String(message.muted));
      $("mute").textContent = message.muted ? "Unmute" : "Mute";
    }
    $("notice").textContent = message.muted ? "The practitioner muted you." : "The practitioner unmuted you.";
  }

  wireControls() {
    if (this.wired) return;
    this.wired = true;
    const toggle = (button, kind, on, off) => button.addEventListener("click", () => {
      const track = this.local && (kind === "audio" ? this.local.getAudioTracks() : this.local.getVideoTracks())[0];
      if (!track) return;
      track.enabled = !track.enabled;
      button.setAttribute("aria-pressed", String(!track.enabled));
      button.textContent = track.enabled ? on : off;
    });
    toggle($("mute"), "audio", "Mute", "Unmute");
    toggle($("camera"), "video", "Camera off", "Camera on");
    $("music-mode").addEventListener("click", () =>
      this.send({ type: "music_mode", on: !this.musicMode }));
    $("end").addEventListener("click", () => this.send({ type: "end" }));
    $("leave").addEventListener("click", () => this.finish("You left the session."));
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("chat-input").value.trim();
      if (!text) return;
      this.send({ type: "chat", text });
      $("chat-input").value = "";
    });
  }

  finish(reason) {
    this.finished = true;
    if (this.ws) this.ws.close();
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    this.local = null;
    $("call").hidden = true;
    $("lobby").hidden = false;
    $("join").disabled = true;
    $("observer-banner").hidden = true;
    this.setState("");
    $("window").textContent = reason;
  }

  setState(text) {
    $("state").textContent = text;
    document.body.dataset.connection = text;
  }

  async stats() {
    const totals = { video: { framesDecoded: 0, packetsReceived: 0 }, audio: { packetsReceived: 0 } };
    if (!this.pc) return totals;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        totals.video.framesDecoded += s.framesDecoded || 0;
        totals.video.packetsReceived += s.packetsReceived || 0;
      } else if (s.kind === "audio") {
        totals.audio.packetsReceived += s.packetsReceived || 0;
      }
    });
    return totals;
  }
}
