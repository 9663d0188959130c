// The call page: preview and devices, test call through the echo peer, and the call
// itself with perfect negotiation as docs/signaling.md describes it; on weak links the
// page adapts by itself (link_quality.js, "Link" below).
import {LinkQuality, classify} from "/static/link_quality.js";

const root = document.getElementById("call");
const config = JSON.parse(root.dataset.config);
const texts = JSON.parse(root.dataset.texts);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const stateEl = document.getElementById("call-state");
const remoteVideo = document.getElementById("remote-video");
const localVideo = document.getElementById("local-video");
const leaveButton = document.getElementById("leave");
const rejoinButton = document.getElementById("rejoin");
// Asked again at least this often while the call is not open: the device's clock is not
// the server's, and the appointment may move in the meantime.
const EARLY_RETRY_SECONDS = 10;

const call = {
  ws: null, grant: null, peers: new Map(), stream: null, state: stateEl.dataset.callState,
  audio: true, video: true, audioOnly: false, ended: false, everConnected: false,
  pingTimer: null, statsTimer: null, watchTimer: null, retryTimer: null, fallbackTimer: null,
  reconnectDelay: 500,
  // A person's choice: audio only (above, renegotiated) or video whatever the link.
  forceVideo: false,
  // What this page makes of its link, and what the other side says of its own.
  link: {quality: "good", peerQuality: "good", autoAudioOnly: false, peerAutoAudioOnly: false,
         peerForcedAudioOnly: false, interrupted: false, unusable: false, interruptedAt: null,
         audioOnlyAt: null, audioOnlySeconds: 0, sample: null},
  // Every camera and microphone track this page opened (all stopped on leaving).
  tracks: [],
  // When the other side left the room while its media still came in: see peerLeft.
  peerDroppedAt: null, peerDroppedTimer: null,
};
const PEER_BACK_MS = 20000;
const PEER_LEFT_WATCH_MS = 800;  // DTX still sends a packet every 400 ms
window.visioCall = call;

function setState(state, text) {
  if (call.ended && state !== "ended") return;
  call.state = state;
  stateEl.dataset.callState = state;
  stateEl.textContent = text || texts[state] || state;
  if (state === "connected") {
    call.everConnected = true;
    document.getElementById("fallback").hidden = true;
  }
}

function showFallback() {
  if (!call.ended) document.getElementById("fallback").hidden = false;
}

function refreshState() {
  if (call.ended) return;
  const states = [...call.peers.values()].map((p) => p.pc.connectionState);
  const open = call.ws && call.ws.readyState === WebSocket.OPEN;
  if (states.includes("connected")) {
    // Connected for ICE, but the media may say otherwise.
    if (call.link.unusable) { setState("unusable"); showFallback(); }
    else if (call.link.interrupted) setState("interrupted");
    else setState("connected");
  } else if (states.length === 0) {
    const dropped = call.peerDroppedAt !== null
      && performance.now() - call.peerDroppedAt < PEER_BACK_MS;
    setState((!open || dropped) && call.everConnected ? "reconnecting" : "waiting");
  } else if (states.includes("failed")) {
    // The other side is there, the media cannot pass: say so, and the number to call.
    setState("no-connection");
    showFallback();
  } else if (states.includes("disconnected") && call.link.interrupted) {
    setState("reconnecting");
  } else if (!call.everConnected && !document.getElementById("fallback").hidden) {
    setState("no-connection");  // past the fallback delay, the other side there
  } else {
    setState(call.everConnected ? "reconnecting" : "connecting");
  }
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf,
              "Accept-Language": config.lang},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    const err = new Error(data.detail || response.statusText);
    err.problem = data;
    err.retryAfter = Number(response.headers.get("Retry-After")) || null;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------------ devices

async function openDevices(cameraId, microphoneId) {
  const constraints = {
    audio: microphoneId ? {deviceId: {exact: microphoneId}} : true,
    video: cameraId ? {deviceId: {exact: cameraId}, width: 640, height: 480}
                    : {width: 640, height: 480},
  };
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  call.tracks.push(...stream.getTracks());
  stream.getAudioTracks().forEach((t) => { t.enabled = call.audio; });
  stream.getVideoTracks().forEach((t) => { t.enabled = call.video; });
  const old = call.stream;
  call.stream = stream;
  localVideo.srcObject = stream;
  for (const peer of call.peers.values()) {
    for (const sender of peer.pc.getSenders()) {
      const track = sender.track ? stream.getTracks().find((t) => t.kind === sender.track.kind)
                                 : null;
      if (track) await sender.replaceTrack(track);
    }
  }
  if (old) old.getTracks().forEach((t) => t.stop());
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = new Option(d.label || `${kind === "videoinput" ? texts.camera : texts.microphone} ${i + 1}`, d.deviceId);
      option.selected = d.deviceId === current;
      return option;
    }));
  };
  const tracks = call.stream ? call.stream.getTracks() : [];
  const id = (kind) => tracks.find((t) => t.kind === kind)?.getSettings().deviceId;
  fill(document.getElementById("camera-select"), "videoinput", id("video"));
  fill(document.getElementById("microphone-select"), "audioinput", id("audio"));
}

document.getElementById("camera-select").addEventListener("change", (e) =>
  openDevices(e.target.value, document.getElementById("microphone-select").value));
document.getElementById("microphone-select").addEventListener("change", (e) =>
  openDevices(document.getElementById("camera-select").value, e.target.value));

// ------------------------------------------------------------------ signaling

function send(frame) {
  if (call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(frame));
}

function waitForOpening(text, seconds) {
  setState("early", text);
  clearTimeout(call.retryTimer);
  call.retryTimer = setTimeout(connectSignaling,
                               Math.min(seconds || EARLY_RETRY_SECONDS, EARLY_RETRY_SECONDS) * 1000);
}

function startFallbackTimer() {
  // Counted from when the call opens: before, there is no call to fall back from.
  if (call.fallbackTimer !== null) return;
  call.fallbackTimer = setTimeout(() => {
    if (call.everConnected || call.ended) return;
    showFallback();
    // The other side is in the room and still no media: name the problem.
    if (call.peers.size) setState("no-connection");
  }, config.fallbackAfter * 1000);
}

async function connectSignaling() {
  if (call.ended) return;
  clearTimeout(call.retryTimer);
  if (!call.grant) {
    try {
      call.grant = await post(`/web/appointments/${config.appointment}/join`);
    } catch (err) {
      if (call.ended) return;
      if ((err.problem?.type || "").endsWith("/call-not-open-yet")) {
        waitForOpening(err.problem.detail, err.retryAfter);
        return;
      }
      setState("failed", `${texts.failed} ${err.message}`);
      // No answer or a server in trouble may pass; a refusal (4xx) will not.
      if (!err.problem || err.problem.status >= 500) {
        call.retryTimer = setTimeout(connectSignaling, 5000);
      }
      return;
    }
    if (call.ended) return;
  }
  startFallbackTimer();
  if (call.state === "early") setState("waiting");
  const ws = new WebSocket(call.grant.signaling_url);
  call.ws = ws;
  ws.addEventListener("open", () => send({type: "join", token: call.grant.token,
                                          can_rollback: true}));
  ws.addEventListener("message", (event) => {
    if (ws === call.ws) onFrame(JSON.parse(event.data));
  });
  ws.addEventListener("close", (event) => {
    if (ws !== call.ws) return;
    call.lastCloseCode = event.code;  // what went wrong, for a support call or a test
    clearInterval(call.pingTimer);
    if (call.ended) return;
    if (event.code === 4409) { endCall(texts.replaced); return; }
    if (event.code === 4410) { endCall(); return; }
    if (event.code === 4413 || event.code === 4404) call.grant = null;
    if (event.code === 4405) {
      // The signaling host's clock is behind the one that granted: wait, then ask again.
      call.grant = null;
      clearTimeout(call.fallbackTimer);
      call.fallbackTimer = null;
      waitForOpening(texts.early, 2);
      return;
    }
    if ([4401, 4402, 4403, 4406].includes(event.code)) { setState("failed"); return; }
    for (const peerId of [...call.peers.keys()]) closePeer(peerId);
    refreshState();
    setTimeout(connectSignaling, call.reconnectDelay);
    call.reconnectDelay = Math.min(call.reconnectDelay * 2, 5000);
  });
}

function onFrame(frame) {
  switch (frame.type) {
    case "joined":
      call.reconnectDelay = 500;
      clearInterval(call.pingTimer);
      call.pingTimer = setInterval(() => send({type: "ping"}),
                                   (frame.ping_interval || 5) * 1000);
      send({type: "media", audio: call.audio, video: call.video && !call.audioOnly});
      sendLink(true);
      for (const peer of frame.peers) {
        newPeer(peer.peer_id, frame.polite_toward[peer.peer_id], peer.media);
        showPeerMedia(peer.media);
      }
      refreshState();
      break;
    case "peer_joined":
      call.peerDroppedAt = null;
      sendLink(true);
      newPeer(frame.peer_id, frame.polite, frame.media);
      showPeerMedia(frame.media);
      refreshState();
      break;
    case "peer_left":
      peerLeft(frame.peer_id);
      break;
    case "sdp": onDescription(frame.from, frame.description); break;
    case "ice": onCandidate(frame.from, frame.candidate); break;
    case "peer_media": showPeerMedia(frame); peerVideo(frame.from, frame.video); break;
    case "peer_link": onPeerLink(frame); break;
    case "room_closed": endCall(); break;
    default: break;
  }
}

function peerLeft(peerId) {
  // The other side left the room. If its media still comes in a moment later (its side
  // of the connection not closed, packets still rising), its signaling dropped, not the
  // person: a saturated link, a restart. Then, until it is back (or PEER_BACK_MS), this
  // page says "reconnecting", never that it waits for the other side.
  const peer = call.peers.get(peerId);
  const connected = (p) => p.pc.connectionState === "connected" && !call.link.interrupted
    && !p.pc.getSenders().some((s) => s.transport?.state === "closed");
  if (!peer || !connected(peer)) {
    closePeer(peerId);
    refreshState();
    return;
  }
  inboundPackets(peer.pc).then((before) => setTimeout(async () => {
    if (call.peers.get(peerId) !== peer) return;  // back already, or gone otherwise
    const after = await inboundPackets(peer.pc).catch(() => before);
    if (call.peers.get(peerId) !== peer) return;
    if (connected(peer) && after > before) {
      call.peerDroppedAt = performance.now();
      clearTimeout(call.peerDroppedTimer);
      call.peerDroppedTimer = setTimeout(refreshState, PEER_BACK_MS + 100);
    }
    closePeer(peerId);
    refreshState();
  }, PEER_LEFT_WATCH_MS), () => { closePeer(peerId); refreshState(); });
}

async function inboundPackets(pc) {
  let packets = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") packets += s.packetsReceived || 0; });
  return packets;
}

function showPeerMedia(media) {
  const note = document.getElementById("peer-media");
  const audioOnly = media && media.video === false;
  note.hidden = !audioOnly;
  note.textContent = audioOnly ? texts.peerAudioOnly : "";
}

// ------------------------------------------------------------------ peer connections

function newPeer(peerId, polite, media) {
  closePeer(peerId);
  const pc = new RTCPeerConnection({iceServers: call.grant.ice_servers});
  const peer = {pc, polite, makingOffer: false, ignoreOffer: false, negotiated: false,
                createdAt: performance.now(), summaryAt: null,
                restartTimer: null, video: media ? media.video !== false : true,
                offerAgain: false};
  call.peers.set(peerId, peer);
  // Tracks are added before any answer, so a polite side answers with its media.
  for (const track of call.stream.getTracks()) pc.addTrack(track, call.stream);
  // Without a camera or a microphone, still receive the other side's.
  for (const kind of ["audio", "video"]) {
    if (!call.stream.getTracks().some((t) => t.kind === kind)) {
      pc.addTransceiver(kind, {direction: "recvonly"});
    }
  }
  preferRed(pc);
  applyAudioOnly(peer);
  tuneSenders(pc);
  pc.addEventListener("track", (event) => {
    remoteVideo.srcObject = event.streams[0] || new MediaStream([event.track]);
  });
  pc.addEventListener("icecandidate", ({candidate}) =>
    send({type: "ice", to: peerId, candidate: candidate ? candidate.toJSON() : null}));
  pc.addEventListener("negotiationneeded", () => {
    // Only the impolite side ever offers: the polite side may face an aiortc peer, which
    // cannot take an offer it did not expect. A polite side that changes its directions
    // (audio only) says so with a `media` frame, and the impolite side offers again.
    if (!polite) offer(peerId, peer);
  });
  pc.addEventListener("connectionstatechange", () => {
    const state = pc.connectionState;
    send({type: "connection", state, peer: peerId});
    if (state === "connected") {
      clearTimeout(peer.restartTimer);
      tuneSenders(pc);
      sendStats(peerId, peer);
    } else if (state === "disconnected") {
      // Give ICE a moment to come back by itself, then restart it.
      clearTimeout(peer.restartTimer);
      peer.restartTimer = setTimeout(() => {
        if (pc.connectionState === "disconnected" && !polite) pc.restartIce();
      }, 2000);
    } else if (state === "failed") {
      showFallback();  // at once: the number to call while recovery is tried
      sendLink(true);
      recover(peerId, peer);
    }
    refreshState();
  });
  return peer;
}

async function offer(peerId, peer) {
  const pc = peer.pc;
  if (peer.makingOffer || pc.signalingState !== "stable") {
    peer.offerAgain = true;  // once the answer to the offer in flight is in
    return;
  }
  try {
    peer.makingOffer = true;
    peer.offerAgain = false;
    const description = await pc.createOffer();
    if (pc.signalingState !== "stable") return;  // an offer came in meanwhile
    await pc.setLocalDescription({type: "offer", sdp: withDtx(description.sdp)});
    send({type: "sdp", to: peerId, description: pc.localDescription.toJSON()});
  } catch (err) {
    console.warn("offer failed", err);
  } finally {
    peer.makingOffer = false;
  }
}

function peerVideo(peerId, video) {
  // The other side turned its video on or off (audio only, camera): when this side leads
  // the negotiation, offer again so that its answer carries its new directions.
  const peer = call.peers.get(peerId);
  if (!peer || video === undefined || peer.video === video) return;
  peer.video = video;
  if (!peer.polite && peer.negotiated) offer(peerId, peer);
}

function recover(peerId, peer) {
  // ICE restart when this side leads; otherwise (or toward aiortc, which has no ICE
  // restart) a fresh start: rejoining makes both sides build new peer connections.
  if (!peer.polite && peer.negotiated) {
    peer.pc.restartIce();
    peer.restartTimer = setTimeout(() => {
      if (peer.pc.connectionState === "failed" && call.ws) call.ws.close(4000, "recover");
    }, 5000);
  } else if (call.ws) {
    call.ws.close(4000, "recover");
  }
}

function closePeer(peerId) {
  const peer = call.peers.get(peerId);
  if (!peer) return;
  clearTimeout(peer.restartTimer);
  call.peers.delete(peerId);
  peer.pc.close();
  if (!call.peers.size) resetLink();
}

async function onDescription(from, description) {
  const peer = call.peers.get(from);
  if (!peer) return;
  const pc = peer.pc;
  const collision = description.type === "offer"
    && (peer.makingOffer || pc.signalingState !== "stable");
  peer.ignoreOffer = !peer.polite && collision;
  if (peer.ignoreOffer) return;
  try {
    await pc.setRemoteDescription(description);  // rolls back a polite side's own offer
    if (description.type === "offer") {
      const answer = await pc.createAnswer();
      await pc.setLocalDescription({type: "answer", sdp: withDtx(answer.sdp)});
      send({type: "sdp", to: from, description: pc.localDescription.toJSON()});
    }
    peer.negotiated = true;
    tuneSenders(pc);
    if (description.type === "answer" && peer.offerAgain) offer(from, peer);
  } catch (err) {
    console.warn("description refused", err);
  }
}

async function onCandidate(from, candidate) {
  const peer = call.peers.get(from);
  if (!peer) return;
  try {
    await peer.pc.addIceCandidate(candidate || null);
  } catch (err) {
    if (!peer.ignoreOffer) console.warn("candidate refused", err);
  }
}

// ------------------------------------------------------------------ controls

function applyAudioOnly(peer) {
  for (const t of peer.pc.getTransceivers()) {
    if (t.receiver.track && t.receiver.track.kind === "video" && !t.stopped) {
      // inactive: neither side sends video any more, audio goes on.
      t.direction = call.audioOnly ? "inactive" : "sendrecv";
    }
  }
}

function toggle(button, on, offText, onText) {
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? onText : offText;
}

document.getElementById("mute").addEventListener("click", (e) => {
  call.audio = !call.audio;
  call.stream?.getAudioTracks().forEach((t) => { t.enabled = call.audio; });
  toggle(e.currentTarget, !call.audio, texts.mute, texts.unmute);
  send({type: "media", audio: call.audio, video: call.video && !call.audioOnly});
});
document.getElementById("camera").addEventListener("click", (e) => {
  call.video = !call.video;
  call.stream?.getVideoTracks().forEach((t) => { t.enabled = call.video; });
  toggle(e.currentTarget, !call.video, texts.cameraOff, texts.cameraOn);
  send({type: "media", audio: call.audio, video: call.video && !call.audioOnly});
});
const audioOnlyButton = document.getElementById("audio-only");
audioOnlyButton.addEventListener("click", () => {
  if (call.audioOnly) {
    call.audioOnly = false;
  } else if (autoAudioOnly()) {
    call.forceVideo = true;  // video whatever the link says, until pressed again
  } else {
    call.audioOnly = true;
    call.forceVideo = false;
  }
  for (const peer of call.peers.values()) applyAudioOnly(peer);
  send({type: "media", audio: call.audio, video: call.video && !call.audioOnly});
  applyLink();
});
const callButtons = ["mute", "camera", "audio-only"].map((id) => document.getElementById(id));

leaveButton.addEventListener("click", () => {
  send({type: "leave"});
  endCall(texts.left);
  for (const button of callButtons) button.disabled = true;
  leaveButton.hidden = true;
  rejoinButton.hidden = false;
  rejoinButton.focus();
});

rejoinButton.addEventListener("click", async () => {
  rejoinButton.hidden = true;
  leaveButton.hidden = false;
  for (const button of callButtons) button.disabled = false;
  leaveButton.focus();
  call.ended = false;
  call.everConnected = false;
  call.grant = null;
  resetLink();
  call.reconnectDelay = 500;
  document.getElementById("fallback").hidden = true;
  setState("waiting");
  await startDevices();
  startStats();
  connectSignaling();
});

function stopDevices() {
  // The camera's light goes off and the microphone is released, test call included.
  stopTest();
  for (const track of call.tracks) track.stop();
  localVideo.srcObject = null;
}

function endCall(message) {
  setState("ended", message);
  call.ended = true;
  clearInterval(call.pingTimer);
  clearInterval(call.statsTimer);
  clearInterval(call.linkTimer);
  clearInterval(call.watchTimer);
  clearTimeout(call.retryTimer);
  clearTimeout(call.fallbackTimer);
  call.fallbackTimer = null;
  for (const peerId of [...call.peers.keys()]) closePeer(peerId);
  const ws = call.ws;
  call.ws = null;  // its close event is then no reason to reconnect
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  stopDevices();
}

// ------------------------------------------------------------------ link

// How often the link is sampled, how often the cut watch looks for inbound media (the
// cut shows within cutAfterMs + WATCH_MS), and the call log's summaries
// (docs/signaling.md).
const SAMPLE_MS = 500;
const WATCH_MS = 100;
const SUMMARY_SECONDS = 10;
const RANK = {"good": 0, "weak": 1, "very-weak": 2};
const machine = new LinkQuality();
const linkEl = document.getElementById("link-quality");
const linkText = document.getElementById("link-quality-text");
const linkNote = document.getElementById("link-note");
let manualLink = false;  // the debug hook feeds the machine instead of getStats()
let lastLinkSent = null;
let lastLinkSentAt = 0;

const OPUS_PTIME_MS = 60;

function withDtx(sdp) {
  // Opus with DTX (silence costs next to nothing), in-band FEC and 60 ms packets: the
  // fmtp line of this side's description is what the other side's encoder follows.
  // 60 ms, not 20: a third of the packets, and each costs about 100 bytes of headers on
  // the wire (RTP, SRTP, UDP, IP, link): 13 kbit/s of headers instead of 40, much of
  // what a 100 kbit/s link has left to drain its queue in audio only. RED covers a lost
  // packet with the next one as before.
  // (`minptime=` in Chromium's line is not `ptime=`.)
  const opus = [...sdp.matchAll(/^a=rtpmap:(\d+) opus\/48000/gim)].map((m) => m[1]);
  return sdp.replace(/^a=fmtp:(\d+) (.*)$/gm, (line, pt, params) => {
    if (!opus.includes(pt)) return line;
    let out = params.replace(/\r$/, "");
    if (!/usedtx=/.test(out)) out += ";usedtx=1";
    if (!/useinbandfec=/.test(out)) out += ";useinbandfec=1";
    if (!/(^|;)\s*ptime=/.test(out)) out += `;ptime=${OPUS_PTIME_MS}`;
    return `a=fmtp:${pt} ${out}${params.endsWith("\r") ? "\r" : ""}`;
  });
}

function preferRed(pc) {
  // RED (redundant audio) first where the browser has it, then Opus.
  const caps = window.RTCRtpReceiver?.getCapabilities?.("audio");
  if (!caps) return;
  const mime = (c) => c.mimeType.toLowerCase();
  const codecs = [...caps.codecs.filter((c) => mime(c) === "audio/red"),
                  ...caps.codecs.filter((c) => mime(c) === "audio/opus"),
                  ...caps.codecs.filter((c) => !["audio/red", "audio/opus"].includes(mime(c)))];
  for (const t of pc.getTransceivers()) {
    const kind = t.sender.track?.kind || t.receiver.track?.kind;
    if (kind === "audio" && t.setCodecPreferences) {
      try { t.setCodecPreferences(codecs); } catch (err) { console.warn("codecs", err); }
    }
  }
}

function autoAudioOnly() {
  return !call.forceVideo && (call.link.autoAudioOnly || call.link.peerAutoAudioOnly);
}

function videoHeld() {
  // This side's audio only: chosen here, or decided by either side's link.
  return call.audioOnly || autoAudioOnly();
}

function videoOff() {
  // This side sends no video: its own audio only, or the other side chose audio only
  // (its renegotiation may take seconds through a weak link: the encodings stop at once).
  return videoHeld() || call.link.peerForcedAudioOnly;
}

const AUDIO_WEAK_KBPS = 16;
// Until the link's first good measure, at most VIDEO_START_MS after its first one, video
// is capped at VIDEO_START_KBPS (the browser starts at 300 kbit/s): on a 100 kbit/s link
// that start filled the queue (5 s of delay, 15 s to drain) before the measures could say
// audio only; on a good link the estimate is good within a second or two, and the full
// cap then lets the browser probe up at once.
const VIDEO_START_KBPS = 80;
const VIDEO_START_MS = 4000;

function videoStarting() {
  const m = machine;
  return !m.goodSeen && (m.startedAt === null || m.lastT - m.startedAt < VIDEO_START_MS);
}

async function tuneSenders(pc) {
  // Caps and priorities; video off at once (no round trip) in automatic audio only.
  for (const sender of pc.getSenders()) {
    const kind = sender.track?.kind;
    if (!kind) continue;
    try {
      const params = sender.getParameters();
      if (!params.encodings || !params.encodings.length) params.encodings = [{}];
      const [encoding] = params.encodings;
      if (kind === "video") {
        encoding.maxBitrate = Math.min(config.videoMaxKbps,
                                       videoStarting() ? VIDEO_START_KBPS : Infinity) * 1000;
        encoding.active = !videoOff();
        encoding.priority = "low";
        encoding.networkPriority = "low";
        params.degradationPreference = "maintain-framerate";
      } else {
        encoding.priority = "high";
        encoding.networkPriority = "high";
        // On a very weak link, speech at 16 kbit/s (RED doubles it, headers add about
        // 24 kbit/s): the whole call then fits 100 kbit/s and the queue drains.
        // In audio only by the link (either side's), capped however the link looks now.
        if (worse(call.link.quality, call.link.peerQuality) === "very-weak"
            || autoAudioOnly()) {
          encoding.maxBitrate = AUDIO_WEAK_KBPS * 1000;
        } else {
          delete encoding.maxBitrate;
        }
      }
      await sender.setParameters(params);
    } catch (err) {
      // Before negotiation some browsers refuse; tried again once negotiated.
    }
  }
}

function worse(a, b) { return RANK[a] >= RANK[b] ? a : b; }

function applyLink() {
  // The page's words and attributes from the link's state, and the video senders.
  const link = call.link;
  const shown = worse(link.quality, link.peerQuality);
  linkEl.dataset.quality = shown;
  linkEl.dataset.localQuality = link.quality;
  linkEl.dataset.peerQuality = link.peerQuality;
  const held = videoOff();
  linkEl.dataset.audioOnly = String(held);
  linkEl.dataset.audioOnlyCause = call.audioOnly ? "forced"
    : (!call.forceVideo && link.autoAudioOnly) ? "auto"
    : (!call.forceVideo && link.peerAutoAudioOnly) ? "peer"
    : link.peerForcedAudioOnly ? "peer-forced" : "";
  linkEl.dataset.forceVideo = String(call.forceVideo);
  linkEl.dataset.problem = link.unusable ? "unusable" : link.interrupted ? "interrupted" : "";
  linkText.textContent = texts[`quality-${shown}`];
  if (held && link.audioOnlyAt === null) link.audioOnlyAt = performance.now();
  if (!held && link.audioOnlyAt !== null) {
    link.audioOnlySeconds += (performance.now() - link.audioOnlyAt) / 1000;
    link.audioOnlyAt = null;
  }
  const cause = linkEl.dataset.audioOnlyCause;
  const previous = linkNote.dataset.note || "";
  const note = cause === "auto" ? "autoAudioOnly" : cause === "peer" ? "peerAutoAudioOnly"
    : (previous === "autoAudioOnly" || previous === "peerAutoAudioOnly"
       || previous === "videoBack") && !held ? "videoBack" : "";
  linkNote.dataset.note = note;
  linkNote.textContent = note ? texts[note] : "";
  linkNote.hidden = !note;
  toggle(audioOnlyButton, videoHeld(), texts.audioOnly, texts.withVideo);
  for (const peer of call.peers.values()) tuneSenders(peer.pc);
  refreshState();
  sendLink(false);
}

function linkFrame() {
  const link = call.link;
  const failed = [...call.peers.values()].some((p) => p.pc.connectionState === "failed");
  return {type: "link", quality: link.quality,
          audio_only: call.audioOnly || (!call.forceVideo && link.autoAudioOnly),
          forced: call.audioOnly || call.forceVideo,
          problem: failed ? "no_connection" : link.unusable ? "unusable"
            : link.interrupted ? "interrupted" : null};
}

function sendLink(always) {
  // On every change of audio only or problem; a change of quality alone at most every 5 s.
  const frame = linkFrame();
  const key = JSON.stringify(frame);
  if (!always && key === lastLinkSent) return;
  const onlyQuality = lastLinkSent && JSON.stringify({...JSON.parse(lastLinkSent),
                                                      quality: frame.quality}) === key;
  if (!always && onlyQuality && performance.now() - lastLinkSentAt < 5000) return;
  lastLinkSent = key;
  lastLinkSentAt = performance.now();
  send(frame);
}

function onPeerLink(frame) {
  const link = call.link;
  link.peerQuality = frame.quality;
  link.peerAutoAudioOnly = frame.audio_only && !frame.forced;
  link.peerForcedAudioOnly = frame.audio_only && frame.forced;
  // Video forced on the other side holds here too; audio only forced there comes as
  // peer_media (renegotiated) and ends a forced video.
  if (frame.forced && !frame.audio_only) call.forceVideo = true;
  else if (frame.forced && frame.audio_only) call.forceVideo = false;
  applyLink();
}

function onLinkState(state) {
  const link = call.link;
  const wasInterrupted = link.interrupted;
  link.quality = state.quality;
  link.autoAudioOnly = state.audioOnly;
  link.interrupted = state.interrupted;
  link.unusable = state.unusable;
  if (state.interrupted && !wasInterrupted) {
    link.interruptedAt = Date.now();
    // Restart ICE at once on the leading side (the old path goes on until a new one
    // is chosen, so a short cut costs nothing).
    for (const peer of call.peers.values()) {
      if (!peer.polite && peer.negotiated && peer.pc.connectionState !== "closed") {
        peer.pc.restartIce();
      }
    }
  }
  if (state.audioOnly && !link.autoAudioOnlyAt) link.autoAudioOnlyAt = Date.now();
  if (!state.audioOnly) link.autoAudioOnlyAt = null;
  if (state.unusable) showFallback();
  if (state.changed.length) applyLink();
  return state;
}

// A remote-inbound-rtp's RTT and loss count this long after its last new report: a
// stream that stopped (video off in audio only) keeps its last values for ever, and
// they would hold the link "very weak" long after its queue drained.
const REMOTE_FRESH_MS = 3000;

async function measure(pc, previous, remoteSeen = new Map()) {
  // One sample of the link from getStats(): see link_quality.js. `remoteSeen`: per
  // remote-inbound-rtp, its count of reports and when that count last rose.
  const report = await pc.getStats();
  const now = performance.now();
  let pairId = null, kbps = null, pairRtt = null, rtpRtt = null, packets = 0, lost = 0;
  let sent = 0, remoteLost = 0;
  report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.id === pairId) {
      if (s.availableOutgoingBitrate !== undefined) kbps = s.availableOutgoingBitrate / 1000;
      if (s.currentRoundTripTime !== undefined) pairRtt = s.currentRoundTripTime * 1000;
    }
    if (s.type === "inbound-rtp") { packets += s.packetsReceived || 0; lost += s.packetsLost || 0; }
    if (s.type === "outbound-rtp") sent += s.packetsSent || 0;
    if (s.type === "remote-inbound-rtp") {
      remoteLost += s.packetsLost || 0;
      const count = s.roundTripTimeMeasurements ?? s.totalRoundTripTime ?? s.packetsLost;
      const seen = remoteSeen.get(s.id);
      if (!seen || seen.count !== count) remoteSeen.set(s.id, {count, at: now});
      if (now - remoteSeen.get(s.id).at > REMOTE_FRESH_MS) return;
      if (s.roundTripTime !== undefined) rtpRtt = Math.max(rtpRtt || 0, s.roundTripTime * 1000);
    }
  });
  const t = performance.now();
  // Inbound loss over about the last two seconds; outbound loss (what the other side's
  // reports count lost, over what this side sent) over about five, as the reports come
  // about once a second per stream. Not the reports' fractionLost: each covers one
  // stream between two reports, a handful of packets for speech at 60 ms, and 1 lost of
  // 12 read as "8 % lost" (very weak) on a link losing 3 %.
  const history = (previous || []).filter((h) => t - h.t <= 5000);
  history.push({t, packets, lost, sent, remoteLost});
  const first = history.find((h) => t - h.t <= 2500);
  const got = packets - first.packets, missed = Math.max(lost - first.lost, 0);
  const inLoss = got + missed > 0 ? missed / (got + missed) : null;
  const oldest = history[0];
  const out = sent - oldest.sent, outMissed = Math.max(remoteLost - oldest.remoteLost, 0);
  const outLoss = out > 0 ? Math.min(outMissed / out, 1) : null;
  const known = [inLoss, outLoss].filter((v) => v !== null);
  const loss = known.length ? Math.max(...known) : null;
  const rtts = [pairRtt, rtpRtt].filter((v) => v !== null);
  return {sample: {t, kbps, rttMs: rtts.length ? Math.max(...rtts) : null, loss, packets},
          history};
}

function feedMachine(sample) {
  const starting = videoStarting();
  const state = onLinkState(machine.feed(sample));
  if (starting !== videoStarting()) {
    for (const p of call.peers.values()) tuneSenders(p.pc);
  }
  return state;
}

function linkedPeer() {
  return [...call.peers.values()].find((p) =>
    ["connected", "disconnected"].includes(p.pc.connectionState) && p.negotiated);
}

let sampling = false;  // one getStats() sample at a time: the machine's samples go forward

async function sampleLink() {
  if (manualLink || call.ended || sampling) return;
  const peer = linkedPeer();
  if (!peer) return;
  sampling = true;
  try {
    peer.remoteSeen = peer.remoteSeen || new Map();
    const {sample, history} = await measure(peer.pc, peer.linkHistory, peer.remoteSeen);
    if (manualLink) return;  // the debug hook took over while getStats() ran
    if (typeof peer.mediaAt === "number") sample.mediaAt = peer.mediaAt;
    peer.linkHistory = history;
    call.link.sample = sample;
    feedMachine(sample);
  } catch (err) { /* a closed connection has no stats */ } finally {
    sampling = false;
  }
}

function watchMedia() {
  // The cut watch: when each receiver last delivered media, from
  // getSynchronizationSources() (synchronous and cheap, unlike getStats()); a change
  // dates the last inbound media to this tick. When media has stopped for cutAfterMs,
  // or comes back during a cut, the link is sampled at once instead of at the next
  // SAMPLE_MS.
  if (manualLink || call.ended) return;
  const peer = linkedPeer();
  if (!peer) return;
  let latest = 0;
  try {
    for (const receiver of peer.pc.getReceivers()) {
      for (const source of receiver.getSynchronizationSources()) {
        latest = Math.max(latest, source.timestamp || 0);
      }
    }
  } catch (err) { return; /* a browser without it: the packet counts decide */ }
  const now = performance.now();
  if (latest && latest !== peer.mediaStamp) {
    peer.mediaStamp = latest;
    peer.mediaAt = now;
  }
  if (typeof peer.mediaAt !== "number") return;
  const silent = now - peer.mediaAt >= machine.limits.cutAfterMs;
  if (silent !== call.link.interrupted) sampleLink();
}

function resetLink() {
  Object.assign(call.link, {peerQuality: "good", peerAutoAudioOnly: false,
                            peerForcedAudioOnly: false});
  if (manualLink) { applyLink(); return; }
  machine.reset();
  Object.assign(call.link, {quality: "good", autoAudioOnly: false, interrupted: false,
                            unusable: false, interruptedAt: null});
  applyLink();
}

if (config.linkDebug) {
  // Tests and the link bench feed the machine made-up samples ({t, kbps, rttMs, loss,
  // packets}; see link_quality.js); getStats() no longer does, for this page's life.
  window.visioLinkQuality = {
    feed(sample) {
      if (!manualLink) { manualLink = true; machine.reset(); }
      const state = feedMachine(sample);
      return {...state, shown: linkEl.dataset.quality, callState: call.state};
    },
    machine,
  };
}

// ------------------------------------------------------------------ stats

async function summary(pc) {
  const report = await pc.getStats();
  let rtt = null, lost = 0, received = 0, relay = false, pairId = null;
  report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp") { lost += s.packetsLost || 0; received += s.packetsReceived || 0; }
    if (s.type === "candidate-pair" && (s.id === pairId || (!pairId && s.nominated && s.state === "succeeded"))) {
      if (s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime * 1000;
      const local = report.get(s.localCandidateId), remote = report.get(s.remoteCandidateId);
      relay = local?.candidateType === "relay" || remote?.candidateType === "relay";
    }
  });
  return {rtt_ms: rtt === null ? null : Math.round(rtt),
          packet_loss: lost + received ? lost / (lost + received) : 0,
          candidate_type: relay ? "relay" : "direct"};
}

async function sendStats(peerId, peer) {
  try {
    const stats = await summary(peer.pc);
    if (stats.rtt_ms === null) delete stats.rtt_ms;
    Object.assign(stats, await interval(peer));
    send({type: "connection", state: peer.pc.connectionState, peer: peerId, stats});
  } catch (err) { /* a closed connection has no stats */ }
}

async function interval(peer) {
  // What happened since the previous summary of this peer connection: rates, freezes,
  // audio concealment, and the time in audio only.
  const report = await peer.pc.getStats();
  const now = performance.now();
  const total = {sent: 0, received: 0, freezes: 0, concealed: 0, samples: 0};
  report.forEach((s) => {
    if (s.type === "outbound-rtp") total.sent += s.bytesSent || 0;
    if (s.type === "inbound-rtp") {
      total.received += s.bytesReceived || 0;
      if (s.kind === "video") total.freezes += s.freezeCount || 0;
      if (s.kind === "audio") {
        total.concealed += s.concealedSamples || 0;
        total.samples += s.totalSamplesReceived || 0;
      }
    }
  });
  const last = peer.summaryAt || {t: peer.createdAt, sent: 0, received: 0, freezes: 0,
                                  concealed: 0, samples: 0};
  peer.summaryAt = {t: now, ...total};
  const seconds = Math.max((now - last.t) / 1000, 0.001);
  const samples = total.samples - last.samples;
  const out = {
    out_kbps: Math.max(Math.round((total.sent - last.sent) * 8 / seconds / 100) / 10, 0),
    in_kbps: Math.max(Math.round((total.received - last.received) * 8 / seconds / 100) / 10, 0),
    freezes: Math.max(total.freezes - last.freezes, 0),
    concealment: samples > 0 ? Math.round(Math.max(total.concealed - last.concealed, 0) / samples * 10000) / 10000 : 0,
    audio_only: videoOff(),
    audio_only_s: Math.round(audioOnlyTime() * 10) / 10,
    quality: call.link.quality,
  };
  return out;
}

function audioOnlyTime() {
  // Seconds in audio only since the previous summary.
  const now = performance.now();
  let seconds = call.link.audioOnlySeconds;
  if (call.link.audioOnlyAt !== null) {
    seconds += (now - call.link.audioOnlyAt) / 1000;
    call.link.audioOnlyAt = now;
  }
  call.link.audioOnlySeconds = 0;
  return seconds;
}

function startStats() {
  clearInterval(call.statsTimer);
  call.statsTimer = setInterval(() => {
    for (const [peerId, peer] of call.peers) {
      if (peer.pc.connectionState === "connected") sendStats(peerId, peer);
    }
  }, SUMMARY_SECONDS * 1000);
  clearInterval(call.linkTimer);
  call.linkTimer = setInterval(sampleLink, SAMPLE_MS);
  clearInterval(call.watchTimer);
  call.watchTimer = setInterval(watchMedia, WATCH_MS);
}
startStats();

// What the tests read: totals of the inbound media of every peer connection.
call.inbound = async () => {
  const totals = {videoFrames: 0, audioPackets: 0, audioSamples: 0, videoBytes: 0};
  for (const peer of call.peers.values()) {
    const report = await peer.pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") { totals.videoFrames += s.framesDecoded || 0; totals.videoBytes += s.bytesReceived || 0; }
      if (s.kind === "audio") { totals.audioPackets += s.packetsReceived || 0; totals.audioSamples += s.totalSamplesReceived || 0; }
    });
  }
  return totals;
};

// ------------------------------------------------------------------ test call (echo)

const testButton = document.getElementById("test-call");
const testStop = document.getElementById("test-stop");
const testStatus = document.getElementById("test-status");
const testVideo = document.getElementById("test-video");
let testPc = null;

const testLink = document.getElementById("test-link");
// How long the test call measures the link before it says what to expect.
const TEST_MEASURE_MS = 5000;
const BULK_BYTES = 4096;
const BULK_COUNT = 24;

function stopTest() {
  if (testPc) testPc.close();
  testPc = null;
  clearTimeout(testLink.timer);
  testVideo.hidden = true;
  testStop.hidden = true;
  testButton.hidden = false;
}

testButton.addEventListener("click", async () => {
  stopTest();
  testLink.hidden = true;
  delete testLink.dataset.quality;
  testStatus.textContent = texts.testRunning;
  testStatus.dataset.test = "running";
  try {
    const grant = await post("/web/test-calls");
    const pc = new RTCPeerConnection({iceServers: grant.ice_servers});
    testPc = pc;
    call.stream.getTracks().forEach((t) => pc.addTrack(t, call.stream));
    preferRed(pc);
    tuneSenders(pc);
    const channel = pc.createDataChannel("ping");
    // The echo answers "ping…" with "pong…": small pings for the round trip, then a
    // burst of large ones whose echoes measure the throughput (the media's own estimate
    // is the echo peer's, not the link's).
    const pings = new Map();
    const rtts = [];
    const bulk = {bytes: 0, first: null, last: null};
    channel.addEventListener("open", () => {
      let n = 0;
      const timer = setInterval(() => {
        if (channel.readyState !== "open") { clearInterval(timer); return; }
        if (n >= 8) {
          clearInterval(timer);
          bulk.first = performance.now();
          const filler = "x".repeat(BULK_BYTES);
          for (let i = 0; i < BULK_COUNT; i += 1) channel.send(`pingbulk${i} ${filler}`);
          return;
        }
        n += 1;
        pings.set(`ping${n}`, performance.now());
        channel.send(`ping${n}`);
      }, 250);
    });
    channel.addEventListener("message", ({data}) => {
      const text = String(data);
      if (text.startsWith("pongbulk")) {
        bulk.bytes += text.length;
        bulk.last = performance.now();
        return;
      }
      const sent = pings.get(text.replace(/^pong/, "ping"));
      if (sent !== undefined) rtts.push(performance.now() - sent);
    });
    pc.addEventListener("track", (event) => {
      testVideo.srcObject = event.streams[0] || new MediaStream([event.track]);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") {
        testStatus.textContent = texts.testOk;
        testStatus.dataset.test = "ok";
        tuneSenders(pc);
        clearTimeout(testLink.timer);
        testLink.timer = setTimeout(() => judgeTestLink(pc, rtts, bulk), TEST_MEASURE_MS);
      } else if (pc.connectionState === "failed") {
        testStatus.textContent = texts.testFailed;
        testStatus.dataset.test = "failed";
      }
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription({type: "offer", sdp: withDtx(offer.sdp)});
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
      setTimeout(resolve, 3000);
    });
    const response = await fetch(grant.echo_url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": `Bearer ${grant.token}`,
                "Accept-Language": config.lang},
      body: JSON.stringify({type: "offer", sdp: pc.localDescription.sdp}),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.detail);
    await pc.setRemoteDescription(answer);
    testVideo.hidden = false;
    testStop.hidden = false;
    testButton.hidden = true;
  } catch (err) {
    testStatus.textContent = `${texts.testFailed} ${err.message || ""}`;
    testStatus.dataset.test = "failed";
    stopTest();
  }
});
testStop.addEventListener("click", stopTest);

async function judgeTestLink(pc, rtts, bulk) {
  // What the test call saw of the link: round trip (data channel pings, else RTCP),
  // loss both ways, and the sender's estimate of the throughput; then in words.
  if (pc !== testPc) return;
  const report = await pc.getStats();
  let pairId = null, rtcpRtt = null, lost = 0, received = 0, remoteLoss = 0, estimate = null;
  report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.id === pairId) {
      if (s.currentRoundTripTime !== undefined) rtcpRtt = s.currentRoundTripTime * 1000;
      if (s.availableOutgoingBitrate !== undefined) estimate = s.availableOutgoingBitrate / 1000;
    }
    if (s.type === "inbound-rtp") { lost += s.packetsLost || 0; received += s.packetsReceived || 0; }
    if (s.type === "remote-inbound-rtp" && s.fractionLost !== undefined) remoteLoss = Math.max(remoteLoss, s.fractionLost);
  });
  // The smallest round trip is the link's (the echo peer's own delays only add).
  const rttMs = rtts.length ? Math.min(...rtts) : rtcpRtt;
  // Both ways through the link: what came back of the burst, over the time it took
  // (what did not come back in time counts as not passed).
  const end = bulk.bytes >= BULK_BYTES * BULK_COUNT ? bulk.last : performance.now();
  // Both this and the sender's estimate (which the echo peer's feedback bounds) are
  // lower bounds of what the link carries: the larger one is the better.
  const burst = bulk.first === null ? null : bulk.bytes * 8 / Math.max(end - bulk.first, 1);
  const known = [burst, estimate].filter((v) => v !== null);
  const kbps = known.length ? Math.max(...known) : null;
  const loss = Math.max(lost + received ? lost / (lost + received) : 0, remoteLoss);
  const quality = classify({kbps, rttMs, loss});
  const verdict = {"good": texts.testGood, "weak": texts.testWeak, "very-weak": texts.testPoor}[quality];
  const number = (v, digits) => (v === null ? "?" : v.toLocaleString(config.lang, {maximumFractionDigits: digits}));
  testLink.dataset.quality = quality;
  testLink.dataset.rttMs = rttMs === null ? "" : String(Math.round(rttMs));
  testLink.dataset.loss = String(Math.round(loss * 10000) / 10000);
  testLink.dataset.kbps = kbps === null ? "" : String(Math.round(kbps));
  testLink.textContent = `${verdict} ${texts.testMeasures.replace("{rtt}", number(rttMs, 0))
    .replace("{loss}", number(loss * 100, 1)).replace("{kbps}", number(kbps, 0))}`;
  testLink.hidden = false;
}

// ------------------------------------------------------------------ start

async function startDevices() {
  try {
    await openDevices(document.getElementById("camera-select").value,
                      document.getElementById("microphone-select").value);
  } catch (err) {
    stateEl.textContent = texts.noDevice;
    call.stream = new MediaStream();
  }
}

await startDevices();
connectSignaling();
