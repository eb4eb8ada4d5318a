// The demo page: pick a modality and a test example (or draw a digit), then replay the bundle's
// step list for cross-modal generation (`recipes.cross[m]`, i.e. sample::cross_modal_steps) or
// unconditional generation. Sliders only set each step's `times` and patch step sizes; the
// recipe, plans and kernels all come from the Rust side.
//
// Plain ES modules, no build: this file starts the page and holds the browser test's hooks
// (`window.demo`); controls.js builds the controls (sliders, modality selector, gallery,
// drawing pad); generate.js runs the step lists, reads x back and paints it, and queues the
// page's requests; runner.js replays plans.
import { Runner } from './runner.js';
import { controls } from './controls.js';
import { generation, exampleInput, captionIds } from './generate.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const BUNDLE = params.get('bundle') || 'model/';
const SHADERS = params.get('shaders') || '../shaders/';

// The hooks web/test/demo.test.mjs uses: `ready` (resolves with what was compiled once the page
// is up, or `{ webgpu: false }`), `cross` and `unconditional` (runs with explicit settings),
// `idle` (resolves once the page's queue is empty), and the count and the result of the runs
// (`generations`, `last`, set by every run: the page's and the hooks').
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
  const s = sharedState(r);
  $('app').hidden = false;
  const what = s.shape.map((sh, m) => (s.isText[m] ? `a caption of ${sh[0]} tokens over ${sh[1]} words` : `an image of ${sh.join('×')}`));
  $('about').textContent = `Model: ${s.M.modalities} modalities (${what.join(', ')}), latent ${s.M.latent_total}, ` +
    `iteration ${s.M.iteration}; ${Object.keys(s.M.plans).length} plans, ${r.pipelineCount} pipelines ` +
    `compiled in ${r.compileMs.toFixed(0)} ms.`;
  // No control fires before `gen` is set: all of this runs in one task.
  const ui = controls(s, (what) => gen.request(what));
  const gen = generation(s, ui, recordRun);
  testHooks(s, gen);
  status(s.isText.includes(true) ? 'Ready: pick an example, type a caption, or ask for unconditional samples.'
    : 'Ready: pick an example, draw a digit, or ask for unconditional samples.');
  // ?auto=0 skips the generation on load.
  if (params.get('auto') !== '0') await gen.request({ kind: 'example' });
  return { webgpu: true, compileMs: r.compileMs, loadMs: r.loadMs, pipelines: r.pipelineCount, plans: Object.keys(s.M.plans).length, shaders: s.M.shaders };
}

// The state controls.js and generate.js share: the runner, the model, its modalities (`shape[m]`:
// [C, H, W] or a caption's [L, V]; `size[m]` values an example; `isText[m]`; `slot[m]`: m's place
// among the image or among the text modalities), the images' shape (C×H×W, `per` values an
// image, `images` image modalities), `n` examples a batch, `lut` byte → unit value, the URL's
// parameters, `status`, and the selected shipped example (`index`, set by the gallery).
function sharedState(r) {
  const M = r.manifest;
  // Format 2 bundles (images only) name no kinds and no example indices.
  const kinds = M.kinds ?? Array.from({ length: M.modalities }, () => ({ kind: 'image', shape: M.image }));
  M.examples.indices ??= [...Array(M.examples.count).keys()];
  const isText = kinds.map((k) => k.kind === 'text');
  const slot = isText.map((t, m) => isText.slice(0, m).filter((u) => u === t).length);
  const [C, H, W] = M.image ?? [0, 0, 0];
  const lut = new Float32Array(new Uint32Array(M.byte_to_unit_bits).buffer);
  return {
    r, M, C, H, W, per: C * H * W, n: M.n, lut, params, status, index: 0,
    shape: kinds.map((k) => k.shape), size: kinds.map((k) => k.shape.reduce((a, b) => a * b, 1)),
    isText, slot, images: isText.filter((t) => !t).length,
  };
}

// Every run, the page's and the hooks', ends here.
function recordRun(result) {
  demo.generations++;
  demo.last = result;
  return result;
}

// The test's runs: the page's, with explicit settings instead of the controls'.
// `sizes`: step sizes ({x_step, z_step, ...}) instead of the sliders'; `caption`: a typed
// caption given to text modality `given` instead of shipped example `index`'s.
function testHooks(s, gen) {
  demo.cross = ({ given, index, caption, seed, kz, kx, live = false, sizes }) => {
    const input = caption === undefined ? exampleInput(s, index, given) : captionIds(s, given, caption);
    const label = caption === undefined ? `test example ${s.M.examples.indices[index]}` : 'typed';
    return gen.cross({ given, input, seed, kz, kx, live, sizes, label });
  };
  demo.unconditional = ({ seed, kx, live = false, sizes }) => gen.unconditional({ seed, kx, live, sizes });
  demo.idle = () => gen.idle();
}
