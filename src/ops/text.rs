//! The text modality's kernels over `shaders/text.wgsl` (issue 18): token embedding and its
//! table gradient, softmax cross-entropy (the categorical likelihood of a caption) and its logit
//! gradient, argmax (a revised caption from its continuous form) and one-hot rows.
//!
//! Token ids are f32 tensors holding whole numbers (exact below 2^24, far above any vocabulary);
//! an id outside [0, V) selects nothing: a zero embedding row, no target term, an all-zero
//! one-hot row. Per-thread loops run over V (cross-entropy, argmax) or over the tokens (the table
//! gradient), so both are kept at most 65535 (llvmpipe stops longer loops).
use super::{arity, numel, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::uniform_params!(TextParams for "text" { n: u32, v: u32, e: u32 });

const WG: usize = 256;
/// The longest per-thread loop (llvmpipe's limit).
pub const MAX_LOOP: usize = 65535;

/// The id `x` names, if it is a whole number in [0, v).
fn id_of(x: f32, v: usize) -> Option<usize> {
    (x >= 0.0 && x < v as f32 && x.fract() == 0.0).then_some(x as usize)
}

fn check_loop(op: &str, what: &str, n: usize) -> Result<()> {
    if n == 0 || n > MAX_LOOP {
        return crate::shape_err!("{op}: {what} is {n}, want 1 to {MAX_LOOP} (each thread loops over it; llvmpipe caps loops at 65535 iterations)");
    }
    Ok(())
}

/// Rows of `[.., V]`: (rows, V), after checking V.
fn rows_of(op: &str, s: &[usize]) -> Result<(usize, usize)> {
    let Some(&v) = s.last() else {
        return crate::shape_err!("{op}: scores {s:?} need a last axis (the vocabulary)");
    };
    check_loop(op, "the vocabulary", v)?;
    Ok((numel(&s[..s.len() - 1]), v))
}

fn text(entry: &'static str, (n, v, e): (usize, usize, usize), bindings: Vec<Slot>, threads: usize) -> Lowered {
    Lowered::one(Dispatch {
        shader: "text",
        entry,
        constants: vec![],
        params: TextParams { n: n as u32, v: v as u32, e: e as u32 }.words(),
        bindings,
        workgroups: grid(threads, WG),
    })
}

/// `table[ids]`: ids `[..]`, table `[V, E]` → `[.., E]`. Differentiable in the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Embedding;

impl Op for Embedding {
    fn name(&self) -> String {
        "embedding".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("embedding", i, 2)?;
        let t = i[1];
        if t.len() != 2 || t[0] == 0 || t[1] == 0 {
            return crate::shape_err!("embedding: table {t:?} should be [V, E] with V, E >= 1");
        }
        // The table gradient loops over the tokens.
        check_loop("embedding", "the number of tokens", numel(i[0]))?;
        Ok([i[0], &t[1..]].concat())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (n, v, e) = (numel(i[0]), i[1][0], i[1][1]);
        Ok(text("embed", (n, v, e), vec![Slot::Input(0), Slot::Input(1), Slot::Output], numel(out)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (v, e) = (i[1].shape[0], i[1].shape[1]);
        let mut y = Vec::with_capacity(i[0].data.len() * e);
        for &x in &i[0].data {
            match id_of(x, v) {
                Some(t) => y.extend_from_slice(&i[1].data[t * e..(t + 1) * e]),
                None => y.extend(std::iter::repeat_n(0.0, e)),
            }
        }
        vec![Host::new(&[&i[0].shape[..], &[e]].concat(), y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let vocab = b.shape(i[1])[0];
        vec![None, Some(b.push(Arc::new(EmbeddingGrad { vocab }), &[i[0], dout]))]
    }
}

/// Gradient of [`Embedding`] with respect to the table: ids `[..]`, dout `[.., E]` → `[V, E]`,
/// each row the sum of dout over the tokens with that id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbeddingGrad {
    pub vocab: usize,
}

impl Op for EmbeddingGrad {
    fn name(&self) -> String {
        format!("embedding_grad V {}", self.vocab)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("embedding_grad", i, 2)?;
        let (ids, d) = (i[0], i[1]);
        if d.len() != ids.len() + 1 || &d[..ids.len()] != ids || self.vocab == 0 {
            return crate::shape_err!("embedding_grad: dout {d:?} should be ids {ids:?} plus one axis, vocabulary {} >= 1", self.vocab);
        }
        check_loop("embedding_grad", "the number of tokens", numel(ids))?;
        Ok(vec![self.vocab, d[ids.len()]])
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        Ok(text("embed_grad", (numel(i[0]), self.vocab, out[1]), vec![Slot::Input(0), Slot::Input(1), Slot::Output], numel(out)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let e = *i[1].shape.last().unwrap();
        let mut d = vec![0.0f32; self.vocab * e];
        for (k, &x) in i[0].data.iter().enumerate() {
            if let Some(t) = id_of(x, self.vocab) {
                for c in 0..e {
                    d[t * e + c] += i[1].data[k * e + c];
                }
            }
        }
        vec![Host::new(&[self.vocab, e], d)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None, None]
    }
}

/// Softmax cross-entropy: logits `[.., V]`, ids `[..]` → `[..]`,
/// `logsumexp_j logits[.., j] - logits[.., id]` (minus the log-likelihood of the token).
/// Differentiable in the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxXent;

fn xent_shapes(op: &str, logits: &[usize], ids: &[usize]) -> Result<(usize, usize)> {
    let (n, v) = rows_of(op, logits)?;
    if ids != &logits[..logits.len() - 1] {
        return crate::shape_err!("{op}: ids {ids:?} should be logits {logits:?} without the last axis");
    }
    Ok((n, v))
}

impl Op for SoftmaxXent {
    fn name(&self) -> String {
        "softmax_xent".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("softmax_xent", i, 2)?;
        xent_shapes("softmax_xent", i[0], i[1])?;
        Ok(if i[1].is_empty() { vec![1] } else { i[1].to_vec() })
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (n, v) = xent_shapes("softmax_xent", i[0], i[1])?;
        Ok(text("xent", (n, v, 0), vec![Slot::Input(1), Slot::Input(0), Slot::Output], n))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let v = *i[0].shape.last().unwrap();
        let y = i[0]
            .data
            .chunks(v)
            .zip(&i[1].data)
            .map(|(row, &id)| {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
                (lse - id_of(id, v).map_or(0.0, |t| row[t] as f64)) as f32
            })
            .collect();
        vec![Host::new(&self.shape(&[&i[0].shape, &i[1].shape]).unwrap(), y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        vec![Some(b.push(Arc::new(SoftmaxXentGrad), &[i[0], i[1], out, dout])), None]
    }
}

/// Gradient of [`SoftmaxXent`] in the logits: logits `[.., V]`, ids, the forward loss and dout
/// (both `[..]`) → `(softmax - one_hot(id)) * dout`, `[.., V]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxXentGrad;

impl Op for SoftmaxXentGrad {
    fn name(&self) -> String {
        "softmax_xent_grad".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("softmax_xent_grad", i, 4)?;
        xent_shapes("softmax_xent_grad", i[0], i[1])?;
        let want = SoftmaxXent.shape(&[i[0], i[1]])?;
        if i[2] != want.as_slice() || i[3] != want.as_slice() {
            return crate::shape_err!("softmax_xent_grad: loss {:?} and dout {:?} should be {want:?}", i[2], i[3]);
        }
        Ok(i[0].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (n, v) = xent_shapes("softmax_xent_grad", i[0], i[1])?;
        let b = vec![Slot::Input(1), Slot::Input(0), Slot::Input(2), Slot::Input(3), Slot::Output];
        Ok(text("xent_grad", (n, v, 0), b, numel(out)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let v = *i[0].shape.last().unwrap();
        let mut d = Vec::with_capacity(i[0].data.len());
        for (r, row) in i[0].data.chunks(v).enumerate() {
            let t = id_of(i[1].data[r], v);
            let lse = i[2].data[r] as f64 + t.map_or(0.0, |t| row[t] as f64);
            for (j, &x) in row.iter().enumerate() {
                let hit = if Some(j) == t { 1.0 } else { 0.0 };
                d.push((((x as f64 - lse).exp() - hit) * i[3].data[r] as f64) as f32);
            }
        }
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        // Second derivatives are not needed by the method.
        vec![None, None, None, None]
    }
}

/// The first index of the largest entry along the last axis: `[.., V]` → `[..]` (as f32).
/// Not differentiable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Argmax;

impl Op for Argmax {
    fn name(&self) -> String {
        "argmax".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("argmax", i, 1)?;
        rows_of("argmax", i[0])?;
        let s = &i[0][..i[0].len() - 1];
        Ok(if s.is_empty() { vec![1] } else { s.to_vec() })
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (n, v) = rows_of("argmax", i[0])?;
        Ok(text("argmax", (n, v, 0), vec![Slot::Input(0), Slot::Output], n))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let v = *i[0].shape.last().unwrap();
        let best = i[0]
            .data
            .chunks(v)
            .map(|row| row.iter().enumerate().fold((0, row[0]), |(b, m), (j, &x)| if x > m { (j, x) } else { (b, m) }).0 as f32)
            .collect();
        vec![Host::new(&self.shape(&[&i[0].shape]).unwrap(), best)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None]
    }
}

/// One-hot rows: ids `[..]` → `[.., V]`, 1 at the id (none for an id outside [0, V)).
/// Not differentiable (ids are discrete).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneHot {
    pub vocab: usize,
}

impl Op for OneHot {
    fn name(&self) -> String {
        format!("one_hot V {}", self.vocab)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("one_hot", i, 1)?;
        check_loop("one_hot", "the vocabulary", self.vocab)?;
        Ok([i[0], &[self.vocab]].concat())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        Ok(text("one_hot", (numel(i[0]), self.vocab, 0), vec![Slot::Input(0), Slot::Output], numel(out)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let v = self.vocab;
        let mut y = vec![0.0f32; i[0].data.len() * v];
        for (r, &x) in i[0].data.iter().enumerate() {
            if let Some(t) = id_of(x, v) {
                y[r * v + t] = 1.0;
            }
        }
        vec![Host::new(&[&i[0].shape[..], &[v]].concat(), y)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None]
    }
}
