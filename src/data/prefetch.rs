//! Epoch-based shuffled batches, prepared on a background thread so data loading never stalls
//! the GPU.
//!
//! Order: epoch `e` visits the examples in a permutation drawn from `(seed, e)` alone; batches
//! are consecutive runs of `batch` indices of that permutation, and the last partial batch of an
//! epoch is dropped (every batch has the same shape, so a planned graph can be replayed). The
//! whole sequence is a function of `(seed, len, batch)`, and a [`SamplerState`]
//! `(seed, epoch, position)` saved with a checkpoint resumes it exactly.
use super::Dataset;
use crate::error::{Error, Result};
use crate::ops::Host;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where a batch sequence stands: the next batch starts at `position` of epoch `epoch`'s
/// permutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SamplerState {
    pub seed: u64,
    pub epoch: u64,
    pub position: usize,
}

impl SamplerState {
    /// The start of epoch 0.
    pub fn new(seed: u64) -> SamplerState {
        SamplerState { seed, epoch: 0, position: 0 }
    }
}

/// The permutation of `0..len` visited in `epoch` for `seed`.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(super::synthetic::mix(&[seed, epoch, 0x5eed_0f0d_e5e5]));
    let mut p: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        // Multiply-shift on 64 bits: portable, negligible bias.
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

/// The index sequence on its own (no thread, no data).
#[derive(Clone, Debug)]
pub struct Sampler {
    len: usize,
    batch: usize,
    state: SamplerState,
    perm: Vec<usize>,
    perm_epoch: Option<u64>,
}

impl Sampler {
    /// From the start of epoch 0.
    pub fn new(len: usize, batch: usize, seed: u64) -> Result<Sampler> {
        Sampler::from_state(len, batch, SamplerState::new(seed))
    }

    /// Resumes at `state`. A position where a full batch no longer fits (e.g. the batch size
    /// changed) moves on to the start of the next epoch. Errors (as [`Error::Config`]) when
    /// `batch` is 0 or larger than `len`, or the position lies beyond `len`.
    pub fn from_state(len: usize, batch: usize, state: SamplerState) -> Result<Sampler> {
        if batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if batch > len {
            return Err(Error::Config(format!("batch size {batch} exceeds the dataset's {len} examples")));
        }
        if state.position > len {
            return Err(Error::Config(format!(
                "sampler state position {} lies beyond the dataset's {len} examples",
                state.position
            )));
        }
        let mut s = Sampler { len, batch, state, perm: vec![], perm_epoch: None };
        s.normalise();
        Ok(s)
    }

    fn normalise(&mut self) {
        if self.state.position + self.batch > self.len {
            self.state.epoch += 1;
            self.state.position = 0;
        }
    }

    /// The state before the next batch (save this to resume there).
    pub fn state(&self) -> SamplerState {
        self.state
    }

    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Full batches per epoch (`len / batch`).
    pub fn batches_per_epoch(&self) -> usize {
        self.len / self.batch
    }

    /// The next batch's indices and the state they were taken at; advances.
    pub fn next_indices(&mut self) -> (Vec<usize>, SamplerState) {
        let at = self.state;
        if self.perm_epoch != Some(at.epoch) {
            self.perm = epoch_order(self.len, at.seed, at.epoch);
            self.perm_epoch = Some(at.epoch);
        }
        let idx = self.perm[at.position..at.position + self.batch].to_vec();
        self.state.position += self.batch;
        self.normalise();
        (idx, at)
    }
}

/// One prepared minibatch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// One `[B, C, H, W]` tensor per modality, pixels in [-1, 1].
    pub x: Vec<Host>,
    pub labels: Vec<u8>,
    /// Dataset indices of the examples.
    pub indices: Vec<usize>,
    /// Where this batch was taken.
    pub at: SamplerState,
    /// The state after this batch: save it to resume with the batch that follows.
    pub next: SamplerState,
}

fn make_batch(ds: &Dataset, indices: Vec<usize>, at: SamplerState, next: SamplerState) -> Batch {
    let x = ds.batch(&indices);
    let labels = indices.iter().map(|&i| ds.labels()[i]).collect();
    Batch { x, labels, indices, at, next }
}

/// Prepares batches on a background thread, `depth` ahead of the consumer.
pub struct Prefetch {
    dataset: Arc<Dataset>,
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    /// State before the next batch `next()` returns.
    state: SamplerState,
    batch: usize,
    /// Used only if the worker thread is gone.
    fallback: Option<Sampler>,
}

impl Prefetch {
    /// Shuffled batches of `batch` examples from the start of epoch 0 of `seed`.
    pub fn new(dataset: Arc<Dataset>, batch: usize, seed: u64) -> Result<Prefetch> {
        Prefetch::from_state(dataset, batch, SamplerState::new(seed))
    }

    /// Resumes the sequence at `state` (from [`Prefetch::state`] or [`Batch::next`]).
    pub fn from_state(dataset: Arc<Dataset>, batch: usize, state: SamplerState) -> Result<Prefetch> {
        Prefetch::with_depth(dataset, batch, state, 2)
    }

    /// As [`Prefetch::from_state`], keeping up to `depth` (at least 1) batches ready.
    pub fn with_depth(dataset: Arc<Dataset>, batch: usize, state: SamplerState, depth: usize) -> Result<Prefetch> {
        let mut sampler = Sampler::from_state(dataset.len(), batch, state)?;
        let state = sampler.state();
        let (tx, rx) = sync_channel::<Batch>(depth.max(1) - 1);
        let ds = dataset.clone();
        let worker = std::thread::Builder::new()
            .name("mmebm-prefetch".into())
            .spawn(move || loop {
                let (idx, at) = sampler.next_indices();
                let b = make_batch(&ds, idx, at, sampler.state());
                if tx.send(b).is_err() {
                    break;
                }
            })
            .map_err(|e| Error::Io(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Prefetch { dataset, rx: Some(rx), worker: Some(worker), state, batch, fallback: None })
    }

    /// The next batch (waits only if the worker has not finished preparing it). The sequence
    /// never ends (epochs follow one another), so this is not an `Iterator`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Batch {
        if let Some(rx) = &self.rx {
            if let Ok(b) = rx.recv() {
                self.state = b.next;
                return b;
            }
            // The worker is gone (it can only stop by panicking): go on synchronously.
            self.rx = None;
        }
        let sampler = self.fallback.get_or_insert_with(|| {
            Sampler::from_state(self.dataset.len(), self.batch, self.state)
                .unwrap_or_else(|e| unreachable!("state was valid when the prefetcher started: {e}"))
        });
        let (idx, at) = sampler.next_indices();
        let b = make_batch(&self.dataset, idx, at, sampler.state());
        self.state = b.next;
        b
    }

    /// The state before the batch the next call to [`Prefetch::next`] returns: save it with a
    /// checkpoint and pass it to [`Prefetch::from_state`] to resume.
    pub fn state(&self) -> SamplerState {
        self.state
    }

    pub fn batch_size(&self) -> usize {
        self.batch
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel makes the worker's pending `send` fail, so it exits.
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
