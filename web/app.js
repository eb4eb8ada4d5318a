// The demo page: pick a modality and a test example (or draw a digit), then replay the bundle's
// step list for cross-modal generation (`recipes.cross[m]`, i.e. sample::cross_modal_steps) or
// unconditional generation. Sliders only set each step's `times` and patch step sizes; the
// recipe, plans and kernels all come from the Rust side.
import { Runner } from './runner.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const BUNDLE = params.get('bundle') || 'model/';
const SHADERS = params.get('shaders') || '../shaders/';
const STYLE_NAMES = ['stripes', 'checkerboard', 'noise', 'gradient', 'dots'];

const demo = { generations: 0, last: null };
window.demo = demo;

function status(text) { $('status').textContent = text; }

function noWebGPU(what) {
  const p = $('nogpu');
  p.textContent = `This demo needs WebGPU, which ${what}: open it in a recent Chrome or Edge (version 113 or later) on a desktop.`;
  p.hidden = false;
  $('app').hidden = true;
  return { webgpu: false };
}

if (!navigator.gpu) {
  demo.ready = Promise.resolve(noWebGPU('this browser does not offer'));
} else {
  demo.ready = main().catch((e) => {
    if (e.message === 'WebGPU has no adapter') return noWebGPU('this browser offers but cannot run here (no adapter)');
    status(`Error: ${e.message}`);
    console.error(e.message);
    throw e;
  });
}

async function main() {
  status('Loading the model and compiling the shaders…');
  const r = await Runner.create({ bundle: BUNDLE, shaders: SHADERS });
  const M = r.manifest;
  const [C, H, W] = M.image;
  const per = C * H * W;
  const n = M.n;
  const lut = new Float32Array(new Uint32Array(M.byte_to_unit_bits).buffer);
  $('app').hidden = false;
  $('about').textContent = `Model: ${M.modalities} modalities of ${C}×${H}×${W}, latent ${M.latent_total}, ` +
    `iteration ${M.iteration}; ${Object.keys(M.plans).length} plans, ${r.pipelineCount} pipelines ` +
    `compiled in ${r.compileMs.toFixed(0)} ms.`;

  // ---- controls ----
  const sel = $('modality');
  for (let m = 0; m < M.modalities; m++) sel.add(new Option(`m${m}${STYLE_NAMES[m] ? ' · ' + STYLE_NAMES[m] : ''}`, m));
  // ?m=1 picks the observed modality, ?auto=0 skips the generation on load.
  sel.value = String(Math.min(Math.max(+(params.get('m') || 0), 0), M.modalities - 1));
  const L = M.langevin;
  const slider = (id, value, fmt, toValue) => {
    const el = $(id);
    el.value = value;
    const show = () => { $(id + '_v').textContent = fmt(toValue(+el.value)); };
    el.addEventListener('input', show);
    show();
    return el;
  };
  const ident = (v) => v;
  const pow10 = (v) => 10 ** v;
  slider('kz', L.kz, String, ident);
  slider('kx', L.kx, String, ident);
  slider('z_step', Math.log10(L.z_step), (v) => v.toExponential(1), pow10);
  slider('x_step', Math.log10(L.x_step), (v) => v.toPrecision(2), pow10);
  // Step sizes are patched only once a slider moved, so the defaults stay bit-exact.
  const moved = {};
  for (const id of ['z_step', 'x_step']) $(id).addEventListener('input', () => { moved[id] = true; });
  const stepSizes = () => {
    const v = {};
    for (const id of Object.keys(moved)) v[id] = 10 ** +$(id).value;
    return v;
  };

  // ---- images ----
  const toBytes = (v) => Math.floor((Math.min(Math.max(v, -1), 1) + 1) * 127.5 + 0.5);
  function paint(canvas, get) {
    canvas.width = W; canvas.height = H;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(W, H);
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < 3; c++) img.data[4 * p + c] = get(C === 3 ? c * H * W + p : p);
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  const exampleBytes = (i, m) => r.examples.subarray((i * M.modalities + m) * per, (i * M.modalities + m + 1) * per);

  const gallery = $('gallery');
  let current = { index: 0 };
  function fillGallery() {
    gallery.textContent = '';
    const m = +sel.value;
    for (let i = 0; i < M.examples.count; i++) {
      const c = document.createElement('canvas');
      const b = exampleBytes(i, m);
      paint(c, (k) => b[k]);
      c.title = `test example ${i} (digit ${M.examples.labels[i]})`;
      if (i === current.index) c.className = 'sel';
      c.addEventListener('click', () => { current = { index: i }; fillGallery(); request({ kind: 'example' }); });
      gallery.appendChild(c);
    }
  }
  sel.addEventListener('change', () => { fillGallery(); request({ kind: 'example' }); });
  fillGallery();

  const out = $('out');
  const figs = [];
  for (let m = 0; m < M.modalities; m++) {
    const f = document.createElement('figure');
    const c = document.createElement('canvas');
    c.className = 'px';
    c.width = W; c.height = H;
    const cap = document.createElement('figcaption');
    f.append(c, cap);
    out.appendChild(f);
    figs.push({ f, c, cap });
  }
  const show = (m, values, caption, given = false) => {
    paint(figs[m].c, (k) => toBytes(values[k]));
    figs[m].cap.textContent = caption;
    figs[m].f.className = given ? 'given' : '';
  };

  // ---- the drawing pad: coverage composited onto the example's style ----
  const pad = $('pad');
  const pctx = pad.getContext('2d');
  const clearPad = () => { pctx.fillStyle = '#000'; pctx.fillRect(0, 0, pad.width, pad.height); };
  clearPad();
  let drawing = false;
  let last = null;
  const pos = (e) => { const b = pad.getBoundingClientRect(); return [(e.clientX - b.left) * pad.width / b.width, (e.clientY - b.top) * pad.height / b.height]; };
  pad.addEventListener('pointerdown', (e) => { drawing = true; last = pos(e); pad.setPointerCapture?.(e.pointerId); });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    const p = pos(e);
    pctx.strokeStyle = '#fff';
    pctx.lineWidth = pad.width / W * 2.4;
    pctx.lineCap = 'round';
    pctx.beginPath(); pctx.moveTo(...last); pctx.lineTo(...p); pctx.stroke();
    last = p;
  });
  const endStroke = () => { if (drawing) { drawing = false; request({ kind: 'drawing' }); } };
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointerleave', endStroke);
  $('clear').addEventListener('click', clearPad);

  function drawnBytes(index, m) {
    if (!r.styles) throw new Error('this bundle has no styles to draw onto');
    const img = pctx.getImageData(0, 0, pad.width, pad.height).data;
    const s = pad.width / W;
    const bg = r.styles.subarray((index * M.modalities + m) * per, (index * M.modalities + m + 1) * per);
    const g = M.examples.glyph[index][m];
    const b = new Uint8Array(per);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let sum = 0;
        for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) sum += img[4 * ((y * s + dy) * pad.width + x * s + dx)];
        const cov = sum / (255 * s * s);
        for (let c = 0; c < C; c++) {
          const k = c * H * W + y * W + x;
          b[k] = Math.max(0, Math.min(255, Math.floor(bg[k] + (g[c] - bg[k]) * cov + 0.5)));
        }
      }
    }
    return b;
  }

  // ---- running a recipe ----
  const timesBody = document.querySelector('#times tbody');
  function reportTimes(rows, total) {
    timesBody.textContent = '';
    for (const [name, times, ms] of [...rows, ['total', '', total]]) {
      const tr = timesBody.insertRow();
      for (const v of [name, times, ms.toFixed(1), times ? (ms / times).toFixed(2) : '']) tr.insertCell().textContent = v;
    }
  }
  const setTimes = (steps, kz, kx) => steps.map((s) => ({ ...s, times: s.phase === 'langevin_z' ? kz : s.phase === 'langevin_x' ? kx : s.times }));
  const readX = async () => { const xs = []; for (const v of M.vars.x) xs.push(await r.read(v)); return xs; };
  const first = (a) => a.subarray(0, per);

  // Runs `steps`: one submit per step (its K iterations recorded in one pass) or, live, one
  // submit per iteration with the images refreshed as it goes (`onIter`; after a posterior step
  // z is decoded for the preview: decoding draws no noise, so the result is unchanged).
  // `afterStep(s)` runs after each step. Returns the GPU time in ms (previews excluded).
  async function runSteps(steps, live, onIter, afterStep = async () => {}) {
    const rows = [];
    let total = 0;
    const decode = steps.find((s) => s.phase === 'decode');
    for (const s of steps) {
      let ms = 0;
      for (let t = 0; t < (live ? s.times : Math.min(s.times, 1)); t++) {
        const t0 = performance.now();
        await r.replay([{ key: s.key, times: live ? 1 : s.times }]);
        ms += performance.now() - t0;
        if (!live) continue;
        status(`${s.key}: ${t + 1} / ${s.times}`);
        if (s.phase === 'langevin_z' && decode) await r.replay([{ key: decode.key, times: 1 }]);
        if (s.phase !== 'encode') await onIter(s, t);
      }
      await afterStep(s);
      if (s.times) rows.push([s.key, s.times, ms]);
      total += ms;
      reportTimes(rows, total);
    }
    return total;
  }

  async function cross({ given, bytes, seed, kz, kx, live, label, sizes }) {
    const steps = setTimes(M.recipes.cross[given], kz, kx);
    r.setStepSizes(sizes || stepSizes());
    r.seed(seed);
    const x = new Float32Array(n * per);
    for (let k = 0; k < n * per; k++) x[k] = lut[bytes[k % per]];
    r.write(M.vars.x[given], [n, C, H, W], x);
    show(given, x, `m${given} given (${label})`, true);
    const missing = [...Array(M.modalities).keys()].filter((m) => m !== given);
    const ms = await runSteps(steps, live, async (s, t) => {
      const xs = await readX();
      const what = s.phase === 'langevin_z' ? `z step ${t + 1}` : s.phase === 'langevin_x' ? `x step ${t + 1}` : 'decoded';
      for (const m of missing) show(m, first(xs[m]), `m${m} ${what}`);
    });
    const xs = await readX();
    for (const m of missing) show(m, first(xs[m]), `m${m} generated`);
    status(`Generated ${missing.length} modalities from m${given} (${label}) in ${ms.toFixed(0)} ms: K_z ${kz}, K_x ${kx}, seed ${seed}.`);
    demo.generations++;
    demo.last = { kind: 'cross', given, ms, x: xs.map((a) => Array.from(a)) };
    return demo.last;
  }

  async function unconditional({ seed, kx, live, sizes }) {
    const steps = setTimes(M.recipes.unconditional, 0, kx);
    r.setStepSizes(sizes || stepSizes());
    r.seed(seed);
    const shown = async (what) => { const xs = await readX(); xs.forEach((a, m) => show(m, first(a), `m${m} ${what}`)); return xs; };
    // The generator's samples are read after the prior step (what `sample unconditional` saves).
    let generator = null;
    const ms = await runSteps(steps, live, async (s, t) => { if (s.phase === 'langevin_x') await shown(`x step ${t + 1}`); },
      async (s) => { if (s.phase === 'prior') generator = await shown('generator'); });
    const revised = await shown(kx ? 'revised' : 'generator');
    status(`Unconditional samples in ${ms.toFixed(0)} ms: K_x ${kx}, seed ${seed}.`);
    demo.generations++;
    demo.last = { kind: 'unconditional', ms, generator: generator.map((a) => Array.from(a)), revised: revised.map((a) => Array.from(a)) };
    return demo.last;
  }

  // One generation at a time; a request made meanwhile runs next (only the latest).
  let busy = null;
  let pending = null;
  const settings = () => ({ kz: +$('kz').value, kx: +$('kx').value, seed: Math.max(0, Math.floor(+$('seed').value || 0)), live: $('live').checked });
  async function request(what) {
    pending = what;
    if (busy) return;
    while (pending) {
      const w = pending;
      pending = null;
      const given = +sel.value;
      busy = (async () => {
        if (w.kind === 'unconditional') return unconditional(settings());
        const bytes = w.kind === 'drawing' ? drawnBytes(current.index, given) : exampleBytes(current.index, given);
        const label = w.kind === 'drawing' ? 'drawn' : `test example ${current.index}`;
        return cross({ given, bytes, label, ...settings() });
      })();
      try { await busy; } catch (e) { status(`Error: ${e.message}`); console.error(e.message); }
      busy = null;
    }
  }
  $('go').addEventListener('click', () => request({ kind: 'example' }));
  $('uncond').addEventListener('click', () => request({ kind: 'unconditional' }));

  // Hooks for the browser test: the same runs, with explicit settings.
  // `sizes`: step sizes ({x_step, z_step, ...}) instead of the sliders'.
  demo.cross = ({ given, index, seed, kz, kx, live = false, sizes }) =>
    cross({ given, bytes: exampleBytes(index, given), seed, kz, kx, live, sizes, label: `test example ${index}` });
  demo.unconditional = ({ seed, kx, live = false, sizes }) => unconditional({ seed, kx, live, sizes });
  demo.idle = async () => { while (busy || pending) await (busy || new Promise((res) => setTimeout(res, 20))).catch(() => {}); };

  status('Ready: pick an example, draw a digit, or ask for unconditional samples.');
  if (params.get('auto') !== '0') await request({ kind: 'example' });
  return { webgpu: true, compileMs: r.compileMs, loadMs: r.loadMs, pipelines: r.pipelineCount, plans: Object.keys(M.plans).length, shaders: M.shaders };
}
