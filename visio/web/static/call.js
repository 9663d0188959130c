// The call page: preview and devices, test call through the echo peer, and the call
// itself with perfect negotiation as docs/signaling.md describes it.
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
  pingTimer: null, statsTimer: null, retryTimer: null, fallbackTimer: null,
  reconnectDelay: 500,
  // Every camera and microphone track this page opened (all stopped on leaving).
  tracks: [],
};
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

function refreshState() {
  if (call.ended) return;
  const states = [...call.peers.values()].map((p) => p.pc.connectionState);
  const open = call.ws && call.ws.readyState === WebSocket.OPEN;
  if (states.includes("connected")) setState("connected");
  else if (states.length === 0) setState(!open && call.everConnected ? "reconnecting" : "waiting");
  else if (states.every((s) => s === "failed")) setState("failed");
  else setState(call.everConnected ? "reconnecting" : "connecting");
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
    if (!call.everConnected && !call.ended) document.getElementById("fallback").hidden = false;
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
      for (const peer of frame.peers) {
        newPeer(peer.peer_id, frame.polite_toward[peer.peer_id], peer.media);
        showPeerMedia(peer.media);
      }
      refreshState();
      break;
    case "peer_joined":
      newPeer(frame.peer_id, frame.polite, frame.media);
      showPeerMedia(frame.media);
      refreshState();
      break;
    case "peer_left":
      closePeer(frame.peer_id);
      refreshState();
      break;
    case "sdp": onDescription(frame.from, frame.description); break;
    case "ice": onCandidate(frame.from, frame.candidate); break;
    case "peer_media": showPeerMedia(frame); peerVideo(frame.from, frame.video); break;
    case "room_closed": endCall(); break;
    default: break;
  }
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
  applyAudioOnly(peer);
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
      sendStats(peerId, peer);
    } else if (state === "disconnected") {
      // Give ICE a moment to come back by itself, then restart it.
      clearTimeout(peer.restartTimer);
      peer.restartTimer = setTimeout(() => {
        if (pc.connectionState === "disconnected" && !polite) pc.restartIce();
      }, 2000);
    } else if (state === "failed") {
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
    await pc.setLocalDescription();
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
      await pc.setLocalDescription();
      send({type: "sdp", to: from, description: pc.localDescription.toJSON()});
    }
    peer.negotiated = true;
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
document.getElementById("audio-only").addEventListener("click", (e) => {
  call.audioOnly = !call.audioOnly;
  for (const peer of call.peers.values()) applyAudioOnly(peer);
  toggle(e.currentTarget, call.audioOnly, texts.audioOnly, texts.withVideo);
  send({type: "media", audio: call.audio, video: call.video && !call.audioOnly});
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
  clearTimeout(call.retryTimer);
  clearTimeout(call.fallbackTimer);
  call.fallbackTimer = null;
  for (const peerId of [...call.peers.keys()]) closePeer(peerId);
  const ws = call.ws;
  call.ws = null;  // its close event is then no reason to reconnect
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  stopDevices();
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
    send({type: "connection", state: peer.pc.connectionState, peer: peerId, stats});
  } catch (err) { /* a closed connection has no stats */ }
}

function startStats() {
  clearInterval(call.statsTimer);
  call.statsTimer = setInterval(() => {
    for (const [peerId, peer] of call.peers) {
      if (peer.pc.connectionState === "connected") sendStats(peerId, peer);
    }
  }, 5000);
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

function stopTest() {
  if (testPc) testPc.close();
  testPc = null;
  testVideo.hidden = true;
  testStop.hidden = true;
  testButton.hidden = false;
}

testButton.addEventListener("click", async () => {
  stopTest();
  testStatus.textContent = texts.testRunning;
  testStatus.dataset.test = "running";
  try {
    const grant = await post("/web/test-calls");
    const pc = new RTCPeerConnection({iceServers: grant.ice_servers});
    testPc = pc;
    call.stream.getTracks().forEach((t) => pc.addTrack(t, call.stream));
    pc.addEventListener("track", (event) => {
      testVideo.srcObject = event.streams[0] || new MediaStream([event.track]);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") {
        testStatus.textContent = texts.testOk;
        testStatus.dataset.test = "ok";
      } else if (pc.connectionState === "failed") {
        testStatus.textContent = texts.testFailed;
        testStatus.dataset.test = "failed";
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
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
