//! Checkpoints: safetensors files holding named f32 tensors plus string metadata (config,
//! iteration, data order). Written atomically — temp file in the same folder, fsync, rename —
//! so a crash or a failed run never leaves a half-written file where a good one was.
use crate::modality::Modality;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::ops::Host;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes `tensors` and `metadata` to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Host)], metadata: &BTreeMap<String, String>) -> Result<()> {
    write_atomic(path, &serialize(tensors, metadata)?)
}

/// The safetensors bytes of `tensors` and `metadata` (what [`save`] writes).
pub fn serialize(tensors: &[(String, Host)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, h)| (n.clone(), h.data.iter().flat_map(|v| v.to_le_bytes()).collect(), h.shape.clone()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, b, s)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| Error::Io(format!("tensor {n}: {e}")))?)))
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Io(format!("checkpoint: serialise: {e}")))
}

/// Whether tensor `name` holds u32 bit patterns in f32 slots (the RNG state, Adam's step
/// counters), where a NaN pattern is a valid value.
pub fn holds_bits(name: &str) -> bool {
    name == crate::model::phases::TRAINING.rng || name.ends_with(".step")
}

/// Reads a checkpoint: tensors by name, and the metadata.
pub fn load(path: &Path) -> Result<(BTreeMap<String, Host>, BTreeMap<String, String>)> {
    let data = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| Error::Io(format!("{}: not a readable safetensors checkpoint: {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| Error::Io(format!("{}: not a readable safetensors checkpoint: {e}", path.display())))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::Io(format!("{}: tensor '{name}' is {:?}, expected F32", path.display(), view.dtype())));
        }
        let vals: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(i) = vals.iter().position(|v| !v.is_finite()).filter(|_| !holds_bits(&name)) {
            return Err(Error::Io(format!("{}: tensor '{name}' holds {} at element {i}: the run diverged before this was saved", path.display(), vals[i])));
        }
        tensors.insert(name, Host::new(view.shape(), vals));
    }
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok((tensors, metadata))
}

/// A trained model read back from a checkpoint: its config, the model it defines and every
/// tensor (parameters, optimiser state, RNG).
pub struct Trained {
    pub path: std::path::PathBuf,
    pub cfg: crate::model::Config,
    pub model: crate::model::Model,
    pub tensors: BTreeMap<String, Host>,
    pub iteration: u64,
    /// The vocabulary of the text modalities (metadata `vocab`, one word per line).
    pub vocab: Option<crate::data::text::Vocab>,
}

impl Trained {
    pub fn load(path: &Path) -> Result<Trained> {
        if !path.exists() {
            return Err(Error::Io(format!("{}: no such checkpoint (train writes <out>/checkpoint.safetensors)", path.display())));
        }
        let (tensors, meta) = load(path)?;
        let field = |k: &str| meta.get(k).ok_or_else(|| Error::Io(format!("{}: metadata has no '{k}'; not a checkpoint written by train", path.display())));
        let cfg = crate::model::Config::from_toml(field("config")?, &format!("{} (config)", path.display()))?;
        let bad = |k: &str| Error::Io(format!("{}: metadata field '{k}' is unreadable", path.display()));
        let kinds = match meta.get("kinds") {
            Some(k) => Modality::parse_all(k).map_err(|_| bad("kinds"))?,
            // Written before text modalities: M images of one shape.
            None => {
                let modalities: usize = field("modalities")?.parse().map_err(|_| bad("modalities"))?;
                let image: Vec<usize> = serde_json::from_str(field("image")?).map_err(|_| bad("image"))?;
                Modality::images(modalities, image.try_into().map_err(|_| bad("image"))?)
            }
        };
        let vocab = match meta.get("vocab") {
            Some(v) => Some(crate::data::text::Vocab::from_lines(v, &format!("{} (vocab)", path.display()))?),
            None if kinds.iter().any(Modality::is_text) => return Err(Error::Io(format!("{}: a text modality but no 'vocab' in the metadata", path.display()))),
            None => None,
        };
        let iteration = field("iteration")?.parse().map_err(|_| bad("iteration"))?;
        let model = crate::model::Model::new(&cfg.model, &kinds)?;
        let t = Trained { path: path.to_path_buf(), cfg, model, tensors, iteration, vocab };
        for (name, shape) in t.weight_shapes() {
            match t.tensors.get(&name) {
                None => return Err(Error::Io(format!("{}: missing tensor '{name}'", path.display()))),
                Some(h) if h.shape != shape => {
                    return Err(Error::Io(format!("{}: tensor '{name}' has shape {:?}, the config needs {shape:?}", path.display(), h.shape)))
                }
                _ => {}
            }
        }
        Ok(t)
    }

    /// Names and shapes of the three networks' parameters and spectral-norm vectors (what sampling needs).
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.model.state()
    }

    /// The parameters, in declaration order.
    pub fn weights(&self) -> Vec<(String, &Host)> {
        self.weight_shapes().into_iter().map(|(n, _)| { let h = &self.tensors[&n]; (n, h) }).collect()
    }

    /// Uploads the parameters into `store`.
    pub fn upload(&self, gpu: &crate::gpu::Gpu, store: &mut crate::graph::Store) -> Result<()> {
        for (name, h) in self.weights() {
            store.set(gpu, &name, h)?;
        }
        Ok(())
    }
}
