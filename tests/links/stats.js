// The call page's getStats() totals over all its peer connections: what the tests across
// the emulated link and `make bench-links` read (tests/links/call.py evaluates it).
async () => {
  const c = window.visioCall;
  const out = {state: c.state, text: document.getElementById('call-state').textContent,
    audioOnly: !!c.audioOnly, peers: 0, rtt: null, candidate: null, protocol: null,
    outVideo: {bytes: 0, frames: 0, width: 0, height: 0, fps: 0, active: false},
    inVideo: {frames: 0, bytes: 0, freezes: 0, frozen: 0, width: 0, height: 0},
    inAudio: {samples: 0, concealed: 0, packets: 0, lost: 0},
    // Bytes this side sent: RTP payload by kind, and everything on the transport (RTP
    // and RTCP with their headers), to see what fills a slow link.
    sent: {audio: 0, video: 0, audioPackets: 0, transport: 0, videoActive: false}};
  // The link indicator and its note, where the page has them (issue 18's call page).
  const indicator = document.querySelector('[data-quality]');
  if (indicator && c.link) {
    out.quality = indicator.dataset.quality;
    out.audioOnlyShown = indicator.dataset.audioOnly === 'true';
    out.audioOnlyCause = indicator.dataset.audioOnlyCause || '';
    out.sample = c.link.sample;  // the last measure the page's link machine was fed
    out.interruptedAt = c.link.interruptedAt;  // Date.now() when it last showed a cut
  }
  const note = document.getElementById('link-note');
  if (note && !note.hidden) out.note = note.textContent;
  for (const peer of c.peers.values()) {
    out.peers += 1;
    const r = await peer.pc.getStats();
    let pairId = null;
    r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    r.forEach((s) => {
      if (s.type === 'outbound-rtp') {
        out.sent[s.kind] += (s.bytesSent || 0) + (s.headerBytesSent || 0);
        if (s.kind === 'audio') out.sent.audioPackets += s.packetsSent || 0;
        if (s.kind === 'video' && s.active !== false) out.sent.videoActive = true;
      }
      if (s.type === 'transport') out.sent.transport += s.bytesSent || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.outVideo.bytes += s.bytesSent || 0; out.outVideo.frames += s.framesEncoded || 0;
        if (s.frameWidth) { out.outVideo.width = s.frameWidth; out.outVideo.height = s.frameHeight; }
        out.outVideo.fps = Math.max(out.outVideo.fps, s.framesPerSecond || 0);
        if (s.active !== false) out.outVideo.active = true;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.inVideo.frames += s.framesDecoded || 0; out.inVideo.bytes += s.bytesReceived || 0;
        out.inVideo.freezes += s.freezeCount || 0; out.inVideo.frozen += s.totalFreezesDuration || 0;
        if (s.frameWidth) { out.inVideo.width = s.frameWidth; out.inVideo.height = s.frameHeight; }
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.inAudio.samples += s.totalSamplesReceived || 0; out.inAudio.concealed += s.concealedSamples || 0;
        out.inAudio.packets += s.packetsReceived || 0; out.inAudio.lost += s.packetsLost || 0;
      }
      if (s.type === 'candidate-pair' && s.id === pairId) {
        if (s.currentRoundTripTime !== undefined) out.rtt = s.currentRoundTripTime * 1000;
        const local = r.get(s.localCandidateId);
        if (local) { out.candidate = local.candidateType; out.protocol = local.relayProtocol || local.protocol; }
      }
    });
  }
  return out;
}
