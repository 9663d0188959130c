// What the call page makes of its link, from one sample of getStats() at a time.
// Pure: no DOM, no WebRTC, no clock of its own (each sample carries its time `t` in ms),
// so node --test (tests/js/link_quality.test.mjs) drives it with made-up samples, and
// the page's debug hook (VISIO_CALL_LINK_DEBUG) the same way. docs/signaling.md lists
// the thresholds; change them there too.

export const THRESHOLDS = Object.freeze({
  // Very weak: any of these. Held VERY_WEAK_FOR_MS, the page goes audio only by itself.
  veryWeakKbps: 150,        // available outgoing bitrate (candidate pair), kbit/s
  veryWeakRttMs: 1000,      // round trip time, ms
  veryWeakLoss: 0.08,       // fraction of inbound packets lost over the last sample
  // Weak: any of these (and not very weak).
  weakKbps: 400,
  weakRttMs: 400,
  weakLoss: 0.03,
  audioOnlyAfterMs: 5000,   // very weak this long: audio only
  // At the start of a call (until a first good sample, at most startMs after the first
  // sample), an outgoing estimate under startKbps this long is enough: a link that weak
  // from the start carries no video, and waiting the full five seconds at video's start
  // rate fills its queue with seconds of delay (100 kbit/s: 5 s to drain). The estimate
  // alone decides then: the first loss and RTT measures rest on a handful of packets.
  startMs: 10000,
  startKbps: 100,
  audioOnlyAtStartAfterMs: 500,
  // Back to video: this long with RTT and loss under the "back" limits (the outgoing
  // estimate is not used then: with audio alone the sender has nothing to probe with).
  videoBackAfterMs: 30000,
  backRttMs: 500,
  backLoss: 0.03,
  // No inbound RTP packet this long while connected: the link is cut (DTX still sends
  // a comfort-noise packet every 400 ms, so silence is no cut).
  cutAfterMs: 1200,
  // Connected but unusable this long (cut, or very weak even in audio only): the
  // fallback phone shows.
  unusableAfterMs: 20000,
  // The indicator shows the worst quality of this window (a quick fall, a slow rise).
  windowMs: 3000,
});

export const GOOD = "good";
export const WEAK = "weak";
export const VERY_WEAK = "very-weak";
const RANK = {[GOOD]: 0, [WEAK]: 1, [VERY_WEAK]: 2};

/** The quality of one sample: good, weak or very-weak (unknown measures count as good). */
export function classify(sample, limits = THRESHOLDS, {ignoreKbps = false} = {}) {
  const {kbps, rttMs, loss} = sample;
  const known = (v) => typeof v === "number" && Number.isFinite(v);
  const kbpsKnown = !ignoreKbps && known(kbps);
  if ((kbpsKnown && kbps < limits.veryWeakKbps) || (known(rttMs) && rttMs > limits.veryWeakRttMs)
      || (known(loss) && loss > limits.veryWeakLoss)) return VERY_WEAK;
  if ((kbpsKnown && kbps < limits.weakKbps) || (known(rttMs) && rttMs > limits.weakRttMs)
      || (known(loss) && loss > limits.weakLoss)) return WEAK;
  return GOOD;
}

/**
 * The link's state, fed one sample at a time:
 * `{t, kbps?, rttMs?, loss?, packets?}`: `t` in ms (monotonic), `kbps` the available
 * outgoing bitrate, `rttMs`, `loss` the fraction lost since the previous sample, and
 * `packets` the cumulative count of inbound RTP packets (audio and video), `mediaAt`
 * (optional, same clock as `t`) when inbound media last arrived.
 *
 * `feed` answers the state: `{quality, audioOnly, interrupted, unusable}`, plus `changed`
 * (the names of the fields that differ from the previous answer).
 */
export class LinkQuality {
  constructor(limits = {}) {
    this.limits = {...THRESHOLDS, ...limits};
    this.reset();
  }

  reset() {
    this.window = [];           // [t, quality] of the last windowMs
    this.veryWeakSince = null;  // start of the current run of very weak samples
    this.startedAt = null;      // the first sample's time
    this.lastT = null;          // the last sample's time
    this.goodSeen = false;      // a good sample (outgoing estimate known) seen yet
    this.starvedSince = null;   // start of the current run at start under startKbps
    this.backSince = null;      // start of the current run of samples good enough for video
    this.packets = null;
    this.packetsAt = null;      // when the inbound packet count last rose
    this.unusableSince = null;
    this.state = {quality: GOOD, audioOnly: false, interrupted: false, unusable: false};
  }

  feed(sample) {
    const limits = this.limits;
    const t = sample.t;
    // Cut: inbound media stopped (only once some came in). `mediaAt`, when the page
    // knows it, is when media last arrived, watched more often than getStats() runs;
    // otherwise the inbound packet count stopped rising between samples.
    let interrupted = false;
    if (typeof sample.mediaAt === "number") {
      interrupted = t - sample.mediaAt >= limits.cutAfterMs;
      if (typeof sample.packets === "number") this.packets = sample.packets;
      this.packetsAt = sample.mediaAt;
    } else if (typeof sample.packets === "number") {
      if (this.packets === null || sample.packets > this.packets) {
        if (this.packets !== null || sample.packets > 0) this.packetsAt = t;
        this.packets = sample.packets;
      } else if (sample.packets < this.packets) {
        this.packets = sample.packets;  // a new peer connection starts counting again
        this.packetsAt = t;
      }
      interrupted = this.packetsAt !== null && t - this.packetsAt >= limits.cutAfterMs;
    }
    // In audio only the outgoing estimate stays low (audio alone probes nothing): RTT
    // and loss judge the link then.
    const quality = interrupted ? VERY_WEAK
      : classify(sample, limits, {ignoreKbps: this.state.audioOnly});
    this.window.push([t, quality]);
    while (this.window.length && this.window[0][0] <= t - limits.windowMs) this.window.shift();
    const shown = this.window.reduce((worst, [, q]) => (RANK[q] > RANK[worst] ? q : worst), GOOD);

    if (this.startedAt === null) this.startedAt = t;
    this.lastT = t;
    const measured = typeof sample.kbps === "number" && Number.isFinite(sample.kbps);
    if (measured && quality === GOOD) this.goodSeen = true;
    const starting = !this.goodSeen && t - this.startedAt < limits.startMs;
    // The run starts under startKbps and goes on while the estimate stays very weak (it
    // wavers around its fall).
    if (starting && measured && !interrupted
        && sample.kbps < (this.starvedSince === null ? limits.startKbps : limits.veryWeakKbps)) {
      if (this.starvedSince === null) this.starvedSince = t;
    } else {
      this.starvedSince = null;
    }

    let audioOnly = this.state.audioOnly;
    if (!interrupted) {
      // A cut is no measure of the link's rate: the state machine waits for media.
      if (quality === VERY_WEAK) {
        if (this.veryWeakSince === null) this.veryWeakSince = t;
      } else {
        this.veryWeakSince = null;
      }
      if (!audioOnly && ((this.veryWeakSince !== null
          && t - this.veryWeakSince >= limits.audioOnlyAfterMs)
          || (this.starvedSince !== null
              && t - this.starvedSince >= limits.audioOnlyAtStartAfterMs))) {
        audioOnly = true;
        this.backSince = null;
      } else if (audioOnly) {
        const fine = typeof sample.rttMs === "number" ? sample.rttMs <= limits.backRttMs : true;
        const clean = typeof sample.loss === "number" ? sample.loss <= limits.backLoss : true;
        if (fine && clean) {
          if (this.backSince === null) this.backSince = t;
          if (t - this.backSince >= limits.videoBackAfterMs) {
            audioOnly = false;
            this.veryWeakSince = null;
          }
        } else {
          this.backSince = null;
        }
      }
    }

    // Unusable: cut, or very weak although audio only, for unusableAfterMs.
    const bad = interrupted || (audioOnly && classify(sample, limits, {ignoreKbps: true}) === VERY_WEAK);
    if (bad) {
      if (this.unusableSince === null) this.unusableSince = t;
    } else {
      this.unusableSince = null;
    }
    const unusable = this.unusableSince !== null && t - this.unusableSince >= limits.unusableAfterMs;

    const next = {quality: shown, audioOnly, interrupted, unusable};
    const changed = Object.keys(next).filter((k) => next[k] !== this.state[k]);
    this.state = next;
    return {...next, changed};
  }
}
