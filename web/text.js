// Captions in the page: the tokenisation of src/data/text.rs (`words`, `Vocab::encode`,
// `captions_of`), so that a typed caption becomes the same one-hot rows as `sample cross
// --caption` natively (the browser test compares the two).

const PAD = 0;
const UNK = 1;
const END = 2;

// Lower-case words: runs of letters, digits and apostrophes (Rust's char::is_alphanumeric);
// other characters separate words, and , . ; : ! ? are words of their own.
export function words(caption) {
  const out = [];
  let cur = '';
  for (const ch of caption.toLowerCase()) {
    if (/^[\p{Alphabetic}\p{N}']$/u.test(ch)) { cur += ch; continue; }
    if (cur) { out.push(cur); cur = ''; }
    if (',.;:!?'.includes(ch)) out.push(ch);
  }
  if (cur) out.push(cur);
  return out;
}

// `len` token ids: the words (unknown ones as <unk>, cut to leave room), <end>, then <pad>.
export function encode(vocab, caption, len) {
  const index = new Map(vocab.map((w, i) => [w, i]));
  const ids = words(caption).slice(0, len - 1).map((w) => index.get(w) ?? UNK);
  ids.push(END);
  while (ids.length < len) ids.push(PAD);
  return ids;
}

// `n` copies of the one-hot rows [len, V] of `ids`.
export function oneHot(ids, V, n) {
  const per = ids.length * V;
  const x = new Float32Array(n * per);
  for (let k = 0; k < n; k++) ids.forEach((id, p) => { x[k * per + p * V + id] = 1; });
  return x;
}

// The caption of rows [len, V] (one-hot or soft): each position's most likely word (the first
// on ties), up to the first <end>, <pad>s skipped.
export function decode(vocab, rows, len) {
  const V = vocab.length;
  const out = [];
  for (let p = 0; p < len; p++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (rows[p * V + v] > rows[p * V + best]) best = v;
    if (best === END) break;
    if (best !== PAD) out.push(vocab[best] ?? '<unk>');
  }
  return out.join(' ');
}
