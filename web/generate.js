// Generation: replays the bundle's step lists (`recipes.cross[m]`, i.e.
// sample::cross_modal_steps, and `recipes.unconditional`), reads x back and shows it: images
// painted, captions read as their most likely words (text.js).
// `generation(s, ui, done)` returns the runs (`cross`, `unconditional`) and the page's queue
// (`request`, `idle`: one run at a time). `s` is app.js's shared state, `ui` what controls.js
// returns (`given`, `settings`, `stepSizes`, `drawnBytes`, `caption`), `done(result)` records a run.
import { encode, oneHot, decode } from './text.js';

const $ = (id) => document.getElementById(id);

const toBytes = (v) => Math.floor((Math.min(Math.max(v, -1), 1) + 1) * 127.5 + 0.5);

// Paints an image of the model's shape onto `canvas`; `get(k)` is the byte at CHW index k.
export function paint(s, canvas, get) {
  const { C, H, W } = s;
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(W, H);
  for (let p = 0; p < H * W; p++) {
    for (let c = 0; c < 3; c++) img.data[4 * p + c] = get(C === 3 ? c * H * W + p : p);
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// The bytes of shipped test example i's image modality m.
export const exampleBytes = (s, i, m) =>
  s.r.examples.subarray((i * s.images + s.slot[m]) * s.per, (i * s.images + s.slot[m] + 1) * s.per);

// What shipped test example i gives modality m: image bytes, or a caption's token ids.
export const exampleInput = (s, i, m) => (s.isText[m] ? s.M.examples.tokens[i][s.slot[m]] : exampleBytes(s, i, m));

// A caption's words as token ids of modality m.
export const captionIds = (s, m, caption) => encode(s.M.vocab, caption, s.shape[m][0]);

// The caption of rows [L, V] of modality m.
export const captionOf = (s, m, rows) => decode(s.M.vocab, rows, s.shape[m][0]);

export function generation(s, ui, done) {
  const g = { s, ui, done, show: figures(s), busy: null, pending: null };
  return {
    cross: (o) => cross(g, o),
    unconditional: (o) => unconditional(g, o),
    request: (what) => request(g, what),
    idle: () => idle(g),
  };
}

// One figure per modality under #out (a canvas for an image, a paragraph for a caption);
// returns show(m, values, label, given).
function figures(s) {
  const figs = [];
  for (let m = 0; m < s.M.modalities; m++) {
    const f = document.createElement('figure');
    const c = document.createElement(s.isText[m] ? 'p' : 'canvas');
    c.className = s.isText[m] ? 'caption' : 'px';
    const cap = document.createElement('figcaption');
    f.append(c, cap);
    $('out').appendChild(f);
    figs.push({ f, c, cap });
  }
  return (m, values, label, given = false) => {
    if (s.isText[m]) figs[m].c.textContent = captionOf(s, m, values);
    else paint(s, figs[m].c, (k) => toBytes(values[k]));
    figs[m].cap.textContent = label;
    figs[m].f.className = given ? 'given' : '';
  };
}

function reportTimes(rows, total) {
  const body = document.querySelector('#times tbody');
  body.textContent = '';
  for (const [name, times, ms] of [...rows, ['total', '', total]]) {
    const tr = body.insertRow();
    for (const v of [name, times, ms.toFixed(1), times ? (ms / times).toFixed(2) : '']) tr.insertCell().textContent = v;
  }
}

const setTimes = (steps, kz, kx) => steps.map((s) => ({ ...s, times: s.phase === 'langevin_z' ? kz : s.phase === 'langevin_x' ? kx : s.times }));
const readX = async (s) => { const xs = []; for (const v of s.M.vars.x) xs.push(await s.r.read(v)); return xs; };
// The first example of modality m's values.
const first = (s, a, m) => a.subarray(0, s.size[m]);

// Runs `steps`: one submit per step (its K iterations recorded in one pass) or, live, one
// submit per iteration with the images refreshed as it goes (`onIter`; after a posterior step
// z is decoded for the preview: decoding draws no noise, so the result is unchanged).
// `afterStep(step)` runs after each step. Returns the GPU time in ms (previews excluded).
async function runSteps(s, steps, live, onIter, afterStep = async () => {}) {
  const rows = [];
  let total = 0;
  const decode = steps.find((step) => step.phase === 'decode');
  for (const step of steps) {
    let ms = 0;
    for (let t = 0; t < (live ? step.times : Math.min(step.times, 1)); t++) {
      const t0 = performance.now();
      await s.r.replay([{ key: step.key, times: live ? 1 : step.times }]);
      ms += performance.now() - t0;
      if (!live) continue;
      s.status(`${step.key}: ${t + 1} / ${step.times}`);
      if (step.phase === 'langevin_z' && decode) await s.r.replay([{ key: decode.key, times: 1 }]);
      if (step.phase !== 'encode') await onIter(step, t);
    }
    await afterStep(step);
    if (step.times) rows.push([step.key, step.times, ms]);
    total += ms;
    reportTimes(rows, total);
  }
  return total;
}

// The values of `n` copies of modality m's input: image bytes through the byte → unit table,
// caption ids as one-hot rows.
function inputValues(s, m, input) {
  if (s.isText[m]) return oneHot(input, s.shape[m][1], s.n);
  const x = new Float32Array(s.n * s.per);
  for (let k = 0; k < x.length; k++) x[k] = s.lut[input[k % s.per]];
  return x;
}

// Cross-modal generation from modality `given` (`input`: its image's bytes or caption's ids).
async function cross(g, { given, input, seed, kz, kx, live, label, sizes }) {
  const { s, show } = g;
  const { r, M, n } = s;
  const steps = setTimes(M.recipes.cross[given], kz, kx);
  r.setStepSizes(sizes || g.ui.stepSizes());
  r.seed(seed);
  const x = inputValues(s, given, input);
  r.write(M.vars.x[given], [n, ...s.shape[given]], x);
  show(given, x, `m${given} given (${label})`, true);
  const missing = [...Array(M.modalities).keys()].filter((m) => m !== given);
  const ms = await runSteps(s, steps, live, async (step, t) => {
    const xs = await readX(s);
    const what = step.phase === 'langevin_z' ? `z step ${t + 1}` : step.phase === 'langevin_x' ? `x step ${t + 1}` : 'decoded';
    for (const m of missing) show(m, first(s, xs[m], m), `m${m} ${what}`);
  });
  const xs = await readX(s);
  for (const m of missing) show(m, first(s, xs[m], m), `m${m} generated`);
  s.status(`Generated ${missing.length} modalit${missing.length === 1 ? 'y' : 'ies'} from m${given} (${label}) in ${ms.toFixed(0)} ms: K_z ${kz}, K_x ${kx}, seed ${seed}.`);
  return g.done({ kind: 'cross', given, ms, x: xs.map((a) => Array.from(a)) });
}

async function unconditional(g, { seed, kx, live, sizes }) {
  const { s, show } = g;
  const steps = setTimes(s.M.recipes.unconditional, 0, kx);
  s.r.setStepSizes(sizes || g.ui.stepSizes());
  s.r.seed(seed);
  const shown = async (what) => { const xs = await readX(s); xs.forEach((a, m) => show(m, first(s, a, m), `m${m} ${what}`)); return xs; };
  // The generator's samples are read after the prior step (what `sample unconditional` saves).
  let generator = null;
  const ms = await runSteps(s, steps, live, async (step, t) => { if (step.phase === 'langevin_x') await shown(`x step ${t + 1}`); },
    async (step) => { if (step.phase === 'prior') generator = await shown('generator'); });
  const revised = await shown(kx ? 'revised' : 'generator');
  s.status(`Unconditional samples in ${ms.toFixed(0)} ms: K_x ${kx}, seed ${seed}.`);
  return g.done({ kind: 'unconditional', ms, generator: generator.map((a) => Array.from(a)), revised: revised.map((a) => Array.from(a)) });
}

// One generation at a time; a request made meanwhile runs next (only the latest).
// `what.kind`: 'example' (the selected test example), 'drawing' (the pad), 'caption' (the
// caption box) or 'unconditional'.
async function request(g, what) {
  g.pending = what;
  if (g.busy) return;
  while (g.pending) {
    const w = g.pending;
    g.pending = null;
    g.busy = start(g, w);
    try { await g.busy; } catch (e) { g.s.status(`Error: ${e.message}`); console.error(e.message); }
    g.busy = null;
  }
}

// The run a request asks for, with the page's settings (async: an error rejects, not throws).
async function start(g, w) {
  const { s, ui } = g;
  const given = ui.given();
  if (w.kind === 'unconditional') return unconditional(g, ui.settings());
  if (w.kind === 'caption') {
    const m = s.isText.indexOf(true);
    return cross(g, { given: m, input: captionIds(s, m, ui.caption()), label: 'typed', ...ui.settings() });
  }
  const input = w.kind === 'drawing' ? ui.drawnBytes(s.index, given) : exampleInput(s, s.index, given);
  const label = w.kind === 'drawing' ? 'drawn' : `test example ${s.M.examples.indices[s.index]}`;
  return cross(g, { given, input, label, ...ui.settings() });
}

// Resolves once no run is going and none is waiting.
async function idle(g) {
  while (g.busy || g.pending) await (g.busy || new Promise((res) => setTimeout(res, 20))).catch(() => {});
}
