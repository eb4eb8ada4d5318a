// The page's controls: the modality selector, the chain sliders, the gallery of test examples,
// the drawing pad (built-in PolyMNIST) and the caption box (a model with a caption modality).
// `controls(s, request)` builds them (`s`: app.js's shared state; the gallery sets `s.index`)
// and returns what a run reads from them: `given()`, `settings()`, `stepSizes()`,
// `drawnBytes(index, m)` and `caption()`. A new modality, a click on an example or a button, a
// finished stroke or Enter in the caption box calls `request({ kind })` (generate.js).
import { paint, exampleBytes, exampleInput, captionOf } from './generate.js';
import { oneHot } from './text.js';

const $ = (id) => document.getElementById(id);
const STYLE_NAMES = ['stripes', 'checkerboard', 'noise', 'gradient', 'dots'];

export function controls(s, request) {
  const sel = modalitySelect(s);
  const stepSizes = chainSliders(s.M.langevin);
  const caption = captionBox(s, request);
  const fillGallery = gallery(s, sel, request, caption.set);
  sel.addEventListener('change', () => { fillGallery(); request({ kind: 'example' }); });
  fillGallery();
  $('drawbox').hidden = !s.r.styles;
  const drawnBytes = s.r.styles ? drawingPad(s, request) : null;
  $('go').addEventListener('click', () => request({ kind: 'example' }));
  $('uncond').addEventListener('click', () => request({ kind: 'unconditional' }));
  return { given: () => +sel.value, settings, stepSizes, drawnBytes, caption: caption.get };
}

// The caption box, shown when the model has a caption modality: Enter or its button asks for
// images from the typed caption. Returns { get, set } of its text.
function captionBox(s, request) {
  const box = $('caption');
  $('captionbox').hidden = !s.isText.includes(true);
  box.addEventListener('keydown', (e) => { if (e.key === 'Enter') request({ kind: 'caption' }); });
  $('fromcaption').addEventListener('click', () => request({ kind: 'caption' }));
  return { get: () => box.value, set: (text) => { box.value = text; } };
}

// The chain settings a run from the page uses.
function settings() {
  return { kz: +$('kz').value, kx: +$('kx').value, seed: Math.max(0, Math.floor(+$('seed').value || 0)), live: $('live').checked };
}

function modalitySelect(s) {
  const sel = $('modality');
  const name = (m) => (s.isText[m] ? 'caption' : s.r.styles ? STYLE_NAMES[m] : s.isText.includes(true) ? 'image' : '');
  for (let m = 0; m < s.M.modalities; m++) sel.add(new Option(`m${m}${name(m) ? ' · ' + name(m) : ''}`, m));
  // ?m=1 picks the observed modality.
  sel.value = String(Math.min(Math.max(+(s.params.get('m') || 0), 0), s.M.modalities - 1));
  return sel;
}

// A range input set to `value`, its shown value (`<id>_v`) kept as fmt(toValue(input)).
function slider(id, value, fmt, toValue) {
  const el = $(id);
  el.value = value;
  const show = () => { $(id + '_v').textContent = fmt(toValue(+el.value)); };
  el.addEventListener('input', show);
  show();
  return el;
}

// The K and step size sliders, set to the bundle's Langevin settings `L`; returns stepSizes().
function chainSliders(L) {
  const ident = (v) => v;
  const pow10 = (v) => 10 ** v;
  slider('kz', L.kz, String, ident);
  slider('kx', L.kx, String, ident);
  slider('z_step', Math.log10(L.z_step), (v) => v.toExponential(1), pow10);
  slider('x_step', Math.log10(L.x_step), (v) => v.toPrecision(2), pow10);
  // Step sizes are patched only once a slider moved, so the defaults stay bit-exact.
  const moved = {};
  for (const id of ['z_step', 'x_step']) $(id).addEventListener('input', () => { moved[id] = true; });
  return () => {
    const v = {};
    for (const id of Object.keys(moved)) v[id] = 10 ** +$(id).value;
    return v;
  };
}

// The shipped test examples, drawn in the selected modality (a caption's examples by their
// image); returns fill(), which redraws them. Picking one also puts its caption in the caption
// box (`setCaption`).
function gallery(s, sel, request, setCaption) {
  const el = $('gallery');
  const textOf = (i) => {
    const t = s.isText.indexOf(true);
    return t < 0 ? '' : captionOf(s, t, oneHot(exampleInput(s, i, t), s.shape[t][1], 1));
  };
  const fill = () => {
    el.textContent = '';
    const m = s.isText[+sel.value] ? s.isText.indexOf(false) : +sel.value;
    for (let i = 0; i < s.M.examples.count; i++) {
      const c = document.createElement('canvas');
      const b = exampleBytes(s, i, m);
      paint(s, c, (k) => b[k]);
      const text = textOf(i);
      c.title = `test example ${s.M.examples.indices[i]} (class ${s.M.examples.labels[i]})${text ? ': ' + text : ''}`;
      if (i === s.index) c.className = 'sel';
      c.addEventListener('click', () => { s.index = i; setCaption(textOf(i)); fill(); request({ kind: 'example' }); });
      el.appendChild(c);
    }
  };
  setCaption(textOf(s.index));
  return fill;
}

// The drawing pad: white strokes on black; a finished stroke requests a run. Returns
// drawnBytes(index, m).
function drawingPad(s, request) {
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
    pctx.lineWidth = pad.width / s.W * 2.4;
    pctx.lineCap = 'round';
    pctx.beginPath(); pctx.moveTo(...last); pctx.lineTo(...p); pctx.stroke();
    last = p;
  });
  const endStroke = () => { if (drawing) { drawing = false; request({ kind: 'drawing' }); } };
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointerleave', endStroke);
  $('clear').addEventListener('click', clearPad);
  return (index, m) => composite(s, pad, pctx, index, m);
}

// The pad's coverage composited onto test example `index`'s background in modality m, in the
// colour of its glyph: the bytes of an image like the examples.
function composite(s, pad, pctx, index, m) {
  const { r, M, C, H, W, per } = s;
  if (!r.styles) throw new Error('this bundle has no styles to draw onto');
  const img = pctx.getImageData(0, 0, pad.width, pad.height).data;
  const sc = pad.width / W;
  const bg = r.styles.subarray((index * M.modalities + m) * per, (index * M.modalities + m + 1) * per);
  const g = M.examples.glyph[index][m];
  const b = new Uint8Array(per);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let sum = 0;
      for (let dy = 0; dy < sc; dy++) for (let dx = 0; dx < sc; dx++) sum += img[4 * ((y * sc + dy) * pad.width + x * sc + dx)];
      const cov = sum / (255 * sc * sc);
      for (let c = 0; c < C; c++) {
        const k = c * H * W + y * W + x;
        b[k] = Math.max(0, Math.min(255, Math.floor(bg[k] + (g[c] - bg[k]) * cov + 0.5)));
      }
    }
  }
  return b;
}
