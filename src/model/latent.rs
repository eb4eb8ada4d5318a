//! Where each part of the latent state `[B, total]` lives, in one place for inference, sampling
//! and the browser plans:
//! - shared z (Ours): `[z (d)]`, and for Ours-w `[z (d) | w_0 (dw) | … | w_{M−1} (dw)]`;
//! - independent generators: `[z_0 (d) | … | z_{M−1} (d)]`.
//!
//! Each expert (encoder) infers `[z | w_m]` (`expert()` wide). Slices and concatenations only:
//! the gradient flows through them like through any op.
use crate::error::Result;
use crate::graph::Graph;
use crate::nn;
use crate::ops::copy::{Concat, Slice};
use crate::ops::Tid;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentLayout {
    /// Width of z (per modality for independent generators).
    pub d: usize,
    /// Width of each modality-specific w_m (0 without Ours-w).
    pub dw: usize,
    pub modalities: usize,
    /// One z shared by every modality (false: the independent-generators ablation).
    pub shared: bool,
}

impl LatentLayout {
    /// Width of the latent state the chains move.
    pub fn total(&self) -> usize {
        if self.shared {
            self.d + self.modalities * self.dw
        } else {
            self.modalities * self.d
        }
    }

    /// Width of what one expert infers, and of one decoder's input: z (+ w_m).
    pub fn expert(&self) -> usize {
        self.d + self.dw
    }

    fn slice(g: &mut Graph, t: Tid, start: usize, len: usize) -> Result<Tid> {
        g.op(Arc::new(Slice { axis: 1, start, len }), &[t])
    }

    /// The shared z of a state (the state itself without w parts).
    pub fn shared_part(&self, g: &mut Graph, state: Tid) -> Result<Tid> {
        if self.dw == 0 { Ok(state) } else { Self::slice(g, state, 0, self.d) }
    }

    /// Modality m's own part of a state: w_m (shared layouts), or z_m (independent generators).
    pub fn own_part(&self, g: &mut Graph, state: Tid, m: usize) -> Result<Tid> {
        if self.shared {
            Self::slice(g, state, self.d + m * self.dw, self.dw)
        } else {
            Self::slice(g, state, m * self.d, self.d)
        }
    }

    /// The decoder input of modality m: its z (and w_m).
    pub fn decoder_input(&self, g: &mut Graph, state: Tid, m: usize) -> Result<Tid> {
        if !self.shared {
            return self.own_part(g, state, m);
        }
        if self.dw == 0 {
            return Ok(state);
        }
        let z = self.shared_part(g, state)?;
        let w = self.own_part(g, state, m)?;
        g.op(Arc::new(Concat { axis: 1 }), &[z, w])
    }

    /// One expert's output `[B, expert]` split into its z and its w (`None` without Ours-w).
    pub fn split_expert(&self, g: &mut Graph, e: Tid) -> Result<(Tid, Option<Tid>)> {
        if self.dw == 0 {
            return Ok((e, None));
        }
        Ok((Self::slice(g, e, 0, self.d)?, Some(Self::slice(g, e, self.d, self.dw)?)))
    }

    /// A state from its shared z (`None` for independent generators) and each modality's own
    /// part, `own(g, m)` (w_m, or z_m).
    pub fn assemble(&self, g: &mut Graph, z: Option<Tid>, mut own: impl FnMut(&mut Graph, usize) -> Result<Tid>) -> Result<Tid> {
        if let (Some(z), 0) = (z, self.dw) {
            return Ok(z);
        }
        let mut parts: Vec<Tid> = z.into_iter().collect();
        for m in 0..self.modalities {
            parts.push(own(g, m)?);
        }
        nn::concat(g, &parts, 1)
    }
}
