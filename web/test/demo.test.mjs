// Browser test of the WebGPU demo (headless Chromium through playwright-core, WebGPU on
// SwiftShader). Run by web/test/run.sh, which trains a tiny model and exports its bundle:
//
//   node web/test/demo.test.mjs --bundle DIR --checkpoint CKPT --native BIN --out DIR
//
// 1. The page served from 127.0.0.1 loads with no console errors, every shader compiles in
//    Chromium (Tint) and every plan replays.
// 2. For a fixed example, modality and seed, the browser's images equal the native ones
//    (`BIN cross|unconditional ... --target webgpu --raw`: the
//    `sample` binary: Sampler::for_target(.., Target::webgpu())) within 1e-3 per pixel: cross-modal
//    generation with posterior refinement (K_x = 0), then with EBM revision, and unconditional
//    generation (generator samples and their revision).
// 3. With --captions-bundle DIR --captions-checkpoint CKPT, an image + caption model: images
//    from a typed caption (capitals, punctuation, unknown words) and from a shipped caption, a
//    caption from an image and unconditional pairs equal native (`sample ... --caption`), and
//    typing into the caption box generates an image (screenshot OUT/demo_captions.png).
// 4. The shipped model (web/model): the page works, simulated mouse strokes on the pad produce
//    four generated images, and a screenshot is saved to OUT/demo.png. With
//    --shipped-checkpoint CKPT (the checkpoint it was exported from; not in git), its
//    cross-modal generation is compared with native as well.
// Exits non-zero, naming the failure, on any mismatch or error.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFileSync, readdirSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, extname, dirname } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, def) => { const k = process.argv.indexOf(name); if (k >= 0) return process.argv[k + 1]; if (def === undefined) throw new Error(`missing ${name}`); return def; };
const BUNDLE = resolve(arg('--bundle'));
const CHECKPOINT = resolve(arg('--checkpoint'));
const NATIVE = resolve(arg('--native'));
const OUT = resolve(arg('--out'));
const SHIPPED = arg('--shipped', 'web/model');
const SHIPPED_CHECKPOINT = arg('--shipped-checkpoint', '');
// A model with a caption modality (image + caption) and its bundle, served at /__captions/.
const CAPTIONS = arg('--captions-bundle', '') && resolve(arg('--captions-bundle'));
const CAPTIONS_CHECKPOINT = CAPTIONS && resolve(arg('--captions-checkpoint'));
const TOL = 1e-3;
mkdirSync(OUT, { recursive: true });

let failures = 0;
const fail = (msg) => { failures++; console.error(`FAIL: ${msg}`); };
const t00 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}`);

// ---- a static server on 127.0.0.1: the repository, and the test bundle at /__bundle/ ----
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wgsl': 'text/plain', '.bin': 'application/octet-stream', '.png': 'image/png' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const served = [['/__bundle/', BUNDLE], ['/__captions/', CAPTIONS]].find(([p, dir]) => dir && path.startsWith(p));
  const file = served ? join(served[1], path.slice(served[0].length)) : join(ROOT, path);
  try {
    if (![ROOT, BUNDLE, CAPTIONS].some((dir) => dir && file.startsWith(dir))) throw new Error('outside');
    const f = statSync(file).isDirectory() ? join(file, 'index.html') : file;
    const body = readFileSync(f);
    res.writeHead(200, { 'content-type': TYPES[extname(f)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const BASE = `http://127.0.0.1:${server.address().port}`;

// ---- native references ----
function safetensors(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const out = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out[k] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  return out;
}
const nativeTimes = {};
function native(mode, name, flags, checkpoint = CHECKPOINT) {
  const dir = join(OUT, 'native', name);
  const args = [mode, '--checkpoint', checkpoint, '--count', '1', '--target', 'webgpu', '--out', dir, '--raw', ...flags.flatMap(([k, v]) => [`--${k}`, String(v)])];
  const text = execFileSync(NATIVE, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const m = /\(([\d.]+)s per sample/.exec(text);
  if (m) nativeTimes[name] = +m[1] * 1000;
  return safetensors(join(dir, 'values.safetensors'));
}
// `sample` names cross-modal tensors x{m}; accept a prefix too (e.g. "cross.x0").
const pick = (vals, name) => vals[name] ?? Object.entries(vals).find(([k]) => k.endsWith('.' + name))?.[1];

function compare(what, got, want) {
  if (!want) return fail(`${what}: missing from the native output`);
  if (got.length !== want.length) return fail(`${what}: ${got.length} values in the browser, ${want.length} native`);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  const ok = worst <= TOL;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}: max |browser - native| = ${worst.toExponential(2)}${ok ? '' : ` at ${at} (browser ${got[at]}, native ${want[at]})`}`);
  if (!ok) failures++;
  return worst;
}

// One generation in the page against native: `c.mode` 'cross' (from shipped example `c.index`,
// whose test index is `c.nativeIndex ?? c.index`, or from a typed `c.caption`) or
// 'unconditional'; every modality's values compared.
async function runCase(page, c, checkpoint) {
  log(`case ${c.name}`);
  let worst = 0;
  if (c.mode === 'cross') {
    const flags = Object.entries(c.sizes || {}).map(([k, v]) => [k.replace('_', '-'), v]);
    const from = c.caption === undefined ? [['index', c.nativeIndex ?? c.index]] : [['caption', c.caption]];
    const want = native('cross', c.name, [['given', c.given], ...from, ['kz', c.kz], ['kx', c.kx], ['seed', c.seed], ...flags], checkpoint);
    const got = await page.evaluate((c) => window.demo.cross(c), c);
    summary.browser_ms[c.name] = got.ms;
    got.x.forEach((x, m) => { worst = Math.max(worst, compare(`${c.name} x${m}${m === c.given ? ' (given)' : ''}`, x, pick(want, `x${m}`))); });
  } else {
    const want = native('unconditional', c.name, [['kx', c.kx], ['seed', c.seed]], checkpoint);
    const got = await page.evaluate((c) => window.demo.unconditional(c), c);
    summary.browser_ms[c.name] = got.ms;
    for (const part of ['generator', 'revised']) {
      got[part].forEach((x, m) => { worst = Math.max(worst, compare(`${c.name} ${part}.x${m}`, x, want[`${part}.x${m}`])); });
    }
  }
  summary.diffs[c.name] = worst;
}

// The caption model: images from a typed caption and from a shipped one, a caption from an
// image, unconditional pairs, each against native; then the caption box typed into.
async function captionModel() {
  log('caption model: loading the page');
  const { page, errors, ready } = await open(`${BASE}/web/index.html?bundle=/__captions/&auto=0&m=1`);
  if (ready.error || !ready.webgpu) throw new Error(`the caption page did not start: ${ready.error || 'no WebGPU'}`);
  const M = JSON.parse(readFileSync(join(CAPTIONS, 'model.json'), 'utf8'));
  const text = M.kinds.findIndex((k) => k.kind === 'text');
  const image = M.kinds.findIndex((k) => k.kind === 'image');
  const cases = [
    // Capitals, punctuation and words outside the vocabulary: tokenised as data::text does.
    { name: 'caption_typed', mode: 'cross', given: text, caption: 'A small RED bird, with a short black bill and zebra-stripes!', seed: 5, kz: 3, kx: 2 },
    { name: 'caption_example', mode: 'cross', given: text, index: 2, nativeIndex: M.examples.indices[2], seed: 8, kz: 2, kx: 2 },
    { name: 'image_to_caption', mode: 'cross', given: image, index: 1, nativeIndex: M.examples.indices[1], seed: 9, kz: 2, kx: 3 },
    { name: 'caption_unconditional', mode: 'unconditional', seed: 4, kx: 2 },
  ];
  for (const c of cases) await runCase(page, c, CAPTIONS_CHECKPOINT);
  // The caption box: type, press Enter, and the image forms.
  const before = await page.evaluate(() => window.demo.generations);
  await page.fill('#caption', 'a large blue bird with a yellow belly');
  await page.press('#caption', 'Enter');
  await page.waitForFunction((b) => window.demo.generations > b, before, { timeout: 120000 });
  await page.evaluate(() => window.demo.idle());
  const last = await page.evaluate(() => window.demo.last);
  const img = last.x[image];
  const shown = await page.textContent('#out figure.given p.caption');
  if (last.kind === 'cross' && last.given === text && img.every(Number.isFinite) && Math.max(...img) - Math.min(...img) > 0.1 && shown === 'a large blue bird with a yellow belly') {
    console.log(`  ok   the caption box produced an image (given caption shown as "${shown}")`);
  } else fail(`the caption box: kind ${last.kind}, given ${last.given}, shown "${shown}"`);
  await page.screenshot({ path: join(OUT, 'demo_captions.png'), fullPage: true });
  checkErrors('caption model page', errors);
  await page.close();
}

// ---- the browser ----
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
async function open(url) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`); });
  await page.goto(url);
  const ready = await page.evaluate(() => window.demo.ready.then((r) => r, (e) => ({ error: e.message })));
  return { page, errors, ready };
}
const checkErrors = (what, errors) => { for (const e of errors) fail(`${what}: ${e}`); if (!errors.length) console.log(`  ok   ${what}: no console errors`); };

const summary = { diffs: {}, browser_ms: {}, native_ms: nativeTimes };
try {
  // 1–2. The tiny model: exactness against native.
  log('tiny model: loading the page');
  const { page, errors, ready } = await open(`${BASE}/web/index.html?bundle=/__bundle/&auto=0`);
  if (ready.error || !ready.webgpu) throw new Error(`the page did not start: ${ready.error || 'no WebGPU'}`);
  console.log(`  ok   ${ready.shaders.length} shaders (${ready.shaders.join(', ')}) and ${ready.pipelines} pipelines of ${ready.plans} plans compiled in Chromium in ${ready.compileMs.toFixed(0)} ms`);
  // Every kernel in shaders/ (not only those the plans use) compiles in Chromium, except those
  // that enable a wgpu-native extension (gemm_coop.wgsl: cooperative matrices), which no browser
  // has and no exported plan uses.
  const all = readdirSync(join(ROOT, 'shaders')).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5)).sort();
  const nativeOnly = (n) => /^\s*enable\s+wgpu_/m.test(readFileSync(join(ROOT, 'shaders', `${n}.wgsl`), 'utf8'));
  const names = all.filter((n) => !nativeOnly(n));
  console.log(`  (native only, not compiled in the browser: ${all.filter(nativeOnly).join(', ') || 'none'})`);
  const compiled = await page.evaluate(async (names) => (await import('./runner.js')).checkShaders('../shaders/', names), names);
  for (const [name, errs] of Object.entries(compiled)) {
    if (errs.length) fail(`shaders/${name}.wgsl in Chromium: ${errs.join('; ')}`);
  }
  console.log(`  ${Object.values(compiled).every((e) => !e.length) ? 'ok  ' : 'FAIL'} every shader compiles in Chromium (Tint): ${names.join(', ')}`);
  const cases = [
    { name: 'cross_posterior', mode: 'cross', given: 1, index: 3, seed: 7, kz: 5, kx: 0 },
    // Step sizes patched into the plans' uniforms by the page (sliders), against native --x-step.
    { name: 'cross_step_sizes', mode: 'cross', given: 0, index: 2, seed: 3, kz: 3, kx: 3, sizes: { z_step: 0.0009765625, x_step: 2.25, x_noise: 0.0078125 } },
    // After it, the bundle's own step sizes again, bit for bit.
    { name: 'cross_revised', mode: 'cross', given: 2, index: 5, seed: 12345, kz: 3, kx: 4 },
    { name: 'unconditional', mode: 'unconditional', seed: 99, kx: 4 },
  ];
  for (const c of cases) await runCase(page, c, CHECKPOINT);
  checkErrors('tiny model page', errors);
  await page.close();
  if (CAPTIONS) await captionModel();

  // 4. The shipped model: the UI, drawing, screenshot.
  log(`shipped model (${SHIPPED}): loading the page`);
  const shipped = SHIPPED.replace(/^\/+|\/+$/g, '');
  const q0 = '?auto=0&m=1';
  const s = await open(shipped === 'web/model' ? `${BASE}/web/index.html${q0}` : `${BASE}/web/index.html${q0}&bundle=/${shipped}/`);
  if (s.ready.error || !s.ready.webgpu) throw new Error(`the shipped demo did not start: ${s.ready.error || 'no WebGPU'}`);
  console.log(`  ok   shipped model: ${s.ready.pipelines} pipelines of ${s.ready.plans} plans compiled in ${s.ready.compileMs.toFixed(0)} ms`);
  const p = s.page;
  // With the checkpoint the shipped bundle was exported from: timed, and compared with native.
  if (SHIPPED_CHECKPOINT) {
    const timed = await p.evaluate(() => window.demo.cross({ given: 1, index: 0, seed: 1, kz: 10, kx: 5 }));
    summary.browser_ms.shipped_cross_kz10_kx5 = timed.ms;
    const want = native('cross', 'shipped_cross_kz10_kx5', [['given', 1], ['index', 0], ['kz', 10], ['kx', 5], ['seed', 1]], SHIPPED_CHECKPOINT);
    let worst = 0;
    timed.x.forEach((x, m) => { worst = Math.max(worst, compare(`shipped model x${m}`, x, pick(want, `x${m}`))); });
    summary.diffs.shipped_cross_kz10_kx5 = worst;
  }
  // Draw a "7" with the mouse on the pad (modality 1's style), then let the live chain run.
  await p.click('#clear');
  const before = await p.evaluate(() => window.demo.generations);
  const box = await p.locator('#pad').boundingBox();
  const at = (u, v) => [box.x + u * box.width, box.y + v * box.height];
  const strokes = [[[0.25, 0.22], [0.72, 0.22], [0.45, 0.8]]];
  for (const st of strokes) {
    await p.mouse.move(...at(...st[0]));
    await p.mouse.down();
    for (let k = 1; k < st.length; k++) await p.mouse.move(...at(...st[k]), { steps: 12 });
    await p.mouse.up();
  }
  await p.waitForFunction((b) => window.demo.generations > b, before, { timeout: 120000 });
  await p.evaluate(() => window.demo.idle());
  const last = await p.evaluate(() => window.demo.last);
  summary.browser_ms.shipped_drawing_live = last.ms;
  const generated = last.x.filter((_, m) => m !== last.given);
  const okImages = last.kind === 'cross' && last.given === 1 && generated.length === 4 &&
    generated.every((x) => x.every(Number.isFinite) && Math.max(...x) - Math.min(...x) > 0.1);
  if (okImages) console.log('  ok   drawing on the pad produced 4 generated images'); else fail('drawing did not produce four generated images');
  const shot = join(OUT, 'demo.png');
  await p.screenshot({ path: shot, fullPage: true });
  console.log(`  ok   screenshot: ${shot}`);
  checkErrors('shipped model page', s.errors);
  await p.close();

  // Without WebGPU the page says so.
  const ctx = await browser.newContext();
  await ctx.addInitScript(() => { delete Object.getPrototypeOf(navigator).gpu; });
  const q = await ctx.newPage();
  await q.goto(`${BASE}/web/index.html`);
  const msg = await q.textContent('#nogpu');
  if (!/WebGPU/.test(msg || '') || !/Chrome/.test(msg)) fail(`without WebGPU the page says: ${msg}`); else console.log(`  ok   without WebGPU: "${msg}"`);
  await ctx.close();
} catch (e) {
  fail(e.stack || e.message);
} finally {
  await browser.close();
  server.close();
}
writeFileSync(join(OUT, 'summary.json'), JSON.stringify(summary, null, 2));
log(`summary: ${JSON.stringify(summary)}`);
if (failures) {
  console.error(`browser test: ${failures} failure(s)`);
  process.exit(1);
}
console.log('browser test: all passed');
