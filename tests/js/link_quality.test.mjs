// The call page's link state machine (visio/web/static/link_quality.js), fed made-up
// samples one second apart. Run by tests/web/test_link_quality_js.py with `node --test`.
import assert from "node:assert/strict";
import test from "node:test";

import {LinkQuality, THRESHOLDS, classify} from "../../visio/web/static/link_quality.js";

const GOOD = {kbps: 1500, rttMs: 40, loss: 0};
const POOR = {kbps: 90, rttMs: 300, loss: 0.02};

function run(machine, from, seconds, sample, packetsFrom = 0, step = 1000) {
  const states = [];
  for (let i = 0; i < seconds * 1000 / step; i += 1) {
    const t = from + i * step;
    states.push([t, machine.feed({...sample, t, packets: packetsFrom + (t / 10)})]);
  }
  return states;
}

test("each threshold alone makes a sample very weak or weak", () => {
  assert.equal(classify(GOOD), "good");
  assert.equal(classify({...GOOD, kbps: 149}), "very-weak");
  assert.equal(classify({...GOOD, rttMs: 1001}), "very-weak");
  assert.equal(classify({...GOOD, loss: 0.081}), "very-weak");
  assert.equal(classify({...GOOD, kbps: 300}), "weak");
  assert.equal(classify({...GOOD, rttMs: 450}), "weak");
  assert.equal(classify({...GOOD, loss: 0.05}), "weak");
  assert.equal(classify({t: 0}), "good", "nothing measured yet is no alarm");
});

test("audio only after five seconds of a very weak link, not before", () => {
  const machine = new LinkQuality();
  run(machine, 0, 10, GOOD);
  const states = run(machine, 10000, 8, POOR);
  const first = states.find(([, s]) => s.audioOnly);
  assert.ok(first, "never audio only");
  assert.equal(first[0] - 10000, THRESHOLDS.audioOnlyAfterMs);
  assert.deepEqual(first[1].changed.includes("audioOnly"), true);
  assert.equal(states[0][1].quality, "very-weak", "the indicator falls at once");
});

test("a short dip does not switch to audio only", () => {
  const machine = new LinkQuality();
  run(machine, 0, 5, GOOD);
  run(machine, 5000, 4, POOR);
  const states = run(machine, 9000, 20, GOOD);
  assert.ok(states.every(([, s]) => !s.audioOnly));
  assert.equal(states.at(-1)[1].quality, "good");
});

test("video comes back after thirty seconds of good measures, and a bad one restarts the count", () => {
  const machine = new LinkQuality();
  run(machine, 0, 6, POOR);
  assert.equal(machine.state.audioOnly, true);
  // Audio alone: the outgoing estimate stays low, RTT and loss are fine.
  const audio = {kbps: 60, rttMs: 120, loss: 0.0};
  let states = run(machine, 6000, 20, audio);
  assert.ok(states.every(([, s]) => s.audioOnly), "back too early");
  assert.equal(states.at(-1)[1].quality, "good", "audio alone judged on RTT and loss");
  run(machine, 26000, 1, {...audio, loss: 0.1});  // one bad second: the count restarts
  states = run(machine, 27000, 35, audio);
  const back = states.find(([, s]) => !s.audioOnly);
  assert.ok(back, "video never came back");
  assert.equal(back[0] - 27000, THRESHOLDS.videoBackAfterMs);
});

test("inbound packets stopping is a cut within the threshold, and it ends when they rise", () => {
  const machine = new LinkQuality();
  run(machine, 0, 5, GOOD, 0, 500);
  const stuck = machine.packets;
  let t = 5000;
  let cut = null;
  for (; t < 8000; t += 500) {
    const s = machine.feed({...GOOD, t, packets: stuck});
    if (s.interrupted && cut === null) cut = t;
  }
  assert.ok(cut !== null, "no cut seen");
  assert.ok(cut - 4500 <= 2000, `cut seen ${cut - 4500} ms after the last packet`);
  assert.equal(machine.state.quality, "very-weak");
  assert.equal(machine.state.audioOnly, false, "a cut is no reason for audio only");
  const back = machine.feed({...GOOD, t, packets: stuck + 10});
  assert.equal(back.interrupted, false);
  assert.ok(back.changed.includes("interrupted"));
});

test("when the page knows when media last arrived, that instant dates the cut", () => {
  // The cut watch (getSynchronizationSources(), every 100 ms) gives mediaAt; the packet
  // count of the slower getStats() sample may not have moved yet, or may have.
  const machine = new LinkQuality();
  run(machine, 0, 5, GOOD, 0, 500);
  const packets = machine.packets;
  const lastMedia = 4900;
  let s = machine.feed({...GOOD, t: lastMedia + THRESHOLDS.cutAfterMs - 100, packets,
                        mediaAt: lastMedia});
  assert.equal(s.interrupted, false, "not yet");
  s = machine.feed({...GOOD, t: lastMedia + THRESHOLDS.cutAfterMs, packets, mediaAt: lastMedia});
  assert.equal(s.interrupted, true, "cut at exactly cutAfterMs after the last media");
  // Media back: the count may lag behind the watch; the watch's instant decides.
  s = machine.feed({...GOOD, t: 9000, packets, mediaAt: 8950});
  assert.equal(s.interrupted, false);
  assert.ok(s.changed.includes("interrupted"));
  // A sample without mediaAt (a new connection before its first media) falls back to
  // the count, from where the watch left it.
  s = machine.feed({...GOOD, t: 9500, packets: packets + 20});
  assert.equal(s.interrupted, false);
});

test("no packet ever received is no cut (the other side sends nothing)", () => {
  const machine = new LinkQuality();
  for (let t = 0; t < 10000; t += 500) assert.equal(machine.feed({t, packets: 0}).interrupted, false);
});

test("connected but unusable: a long cut, or very weak even in audio only", () => {
  let machine = new LinkQuality();
  run(machine, 0, 3, GOOD);
  let s;
  for (let t = 3000; t < 3000 + THRESHOLDS.unusableAfterMs + 2000; t += 1000) {
    s = machine.feed({...GOOD, t, packets: machine.packets});
  }
  assert.equal(s.unusable, true);
  machine = new LinkQuality();
  const states = run(machine, 0, 40, {kbps: 50, rttMs: 2500, loss: 0.2});
  assert.equal(states.at(-1)[1].audioOnly, true);
  assert.equal(states.at(-1)[1].unusable, true);
  const firstUnusable = states.find(([, st]) => st.unusable)[0];
  const audioOnlyAt = states.find(([, st]) => st.audioOnly)[0];
  assert.equal(firstUnusable - audioOnlyAt, THRESHOLDS.unusableAfterMs);
});
