//! `sample`: generation from a trained checkpoint, every mode of the paper.
//!
//!     sample unconditional --checkpoint runs/quick/checkpoint.safetensors --count 16
//!     sample cross --checkpoint C --given 0 --index 0..8            # from test examples
//!     sample cross --checkpoint C --given 0,2 --index 5 --count 8 --kx 10
//!     sample cross --checkpoint C --input m0=my_digit.png --count 8
//!     sample cross --checkpoint C --given 1 --caption "a small red bird with a short bill"
//!     sample cross --checkpoint C --given 0 --input m0=bird.png     # captions printed
//!     sample interpolate --checkpoint C --from 3 --to 7 --frames 10
//!     sample trajectory --checkpoint C --given 0 --index 3 --every 2
//!
//! Grids are written to `--out` (default: the checkpoint's folder + `/sample`), one row per
//! sample and one column per image modality; generated captions are printed and written beside
//! the grid (`NAME.txt`, one line per row). `--raw` adds one PNG per image and
//! `values.safetensors` with the float values. The same `--seed` gives the same files.
use clap::{Args as ClapArgs, Parser, Subcommand};
use mmebm::data::{self, grid::{save_png, save_samples}, Dataset};
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::graph::Store;
use mmebm::ops::{Host, Target};
use mmebm::autotune::{self, Autotune};
use mmebm::sample::{cross_modal_steps, ebm_alone_steps, evaluations, tuning_graphs, unconditional_steps, Phase, Sampler, Step};
use mmebm::train::checkpoint::{self, Trained};
use mmebm::model::config::{check_count, StepFlags, MAX_BATCH, MAX_CHAIN_STEPS};
use mmebm::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Generate from a trained multimodal EBM checkpoint: unconditional, cross-modal, interpolation, Langevin trajectories")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Generator samples (1 network evaluation) and their EBM revision (K_x more); for an
    /// EBM-alone model, K_x EBM steps from uniform noise.
    Unconditional(Common),
    /// The missing modalities from observed ones, from the dataset or from your own PNGs.
    Cross {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        given: Given,
        /// Start the posterior chain from the mean of the first observed expert, not a draw.
        #[arg(long)]
        mean: bool,
    },
    /// Decoded latent interpolation between two examples (z from the mean of modality --given).
    Interpolate {
        #[command(flatten)]
        common: Common,
        /// Example indices (of --split) to interpolate between.
        #[arg(long)]
        from: usize,
        #[arg(long)]
        to: usize,
        /// Observed modality whose expert gives each end's z.
        #[arg(long, default_value_t = 0)]
        given: usize,
        /// Number of frames, ends included.
        #[arg(long, default_value_t = 10)]
        frames: usize,
    },
    /// Frames of one EBM data chain (from generator samples) and one posterior latent chain.
    Trajectory {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        given: Given,
        /// Record a frame every this many Langevin steps.
        #[arg(long, default_value_t = 1)]
        every: u32,
    },
}

#[derive(ClapArgs, Debug)]
struct Common {
    /// Checkpoint written by `train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output folder; default: <checkpoint folder>/sample.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples (per example, for cross-modal generation).
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// EBM Langevin steps K_x (default: the checkpoint's langevin.kx; cross-modal: 0).
    #[arg(long)]
    kx: Option<u32>,
    /// Posterior Langevin steps K_z (default: the checkpoint's langevin.kz).
    #[arg(long)]
    kz: Option<u32>,
    #[command(flatten)]
    steps: StepFlags,
    /// Also write each image as a PNG and all float values to values.safetensors.
    #[arg(long)]
    raw: bool,
    /// PolyMNIST (or CUB) folder the examples come from; default: the built-in set of the checkpoint's config.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Split the examples come from: test or train.
    #[arg(long, default_value = "test")]
    split: String,
    /// Plans compiled for: native (this adapter's fastest kernels) or webgpu (WebGPU's default
    /// limits and kernels: the numbers the browser demo reproduces).
    #[arg(long, default_value = "native")]
    target: String,
    /// wgpu backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// With --target native: time the GEMM variants on this model's problems even on a CPU
    /// adapter (lavapipe) when the tuning file has no choice for them (a GPU adapter does that
    /// unasked); also MMEBM_AUTOTUNE=1 (=0: never).
    #[arg(long)]
    autotune: bool,
}

#[derive(ClapArgs, Debug)]
struct Given {
    /// Observed modalities, e.g. 0 or 0,2 (with --input: taken from the files).
    #[arg(long, default_value = "0")]
    given: String,
    /// Dataset example N or range A..B (end excluded).
    #[arg(long, default_value = "0")]
    index: String,
    /// Your own images instead of dataset examples: m0=digit.png (repeatable).
    #[arg(long, value_name = "mK=FILE.png")]
    input: Vec<String>,
    /// Your own caption for the model's text modality (with or without --input).
    #[arg(long)]
    caption: Option<String>,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Everything a mode needs: the model, its weights on the GPU and the options.
struct Ctx {
    gpu: Gpu,
    store: Store,
    trained: Trained,
    out: PathBuf,
    target: Target,
    kx: u32,
    kz: u32,
    values: Vec<(String, Host)>,
    raw: bool,
}

impl Ctx {
    /// Fails with a clear line for modes that need the generator and encoder.
    fn needs_generator(&self, mode: &str) -> Result<()> {
        if self.trained.cfg.model.generator {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{}: an EBM-alone model has no generator or encoder, so '{mode}' does not apply (unconditional and cross work: chains from noise)",
            self.trained.path.display()
        )))
    }

    /// Loads the checkpoint and checks every flag — the mode's own sizes through `check(kx, kz)`
    /// — before the GPU is touched or anything is written.
    fn new(c: &Common, cross: bool, check: impl FnOnce(u32, u32) -> Result<()>) -> Result<Ctx> {
        let mut trained = Trained::load(&c.checkpoint)?;
        c.steps.apply(&mut trained.cfg.langevin)?;
        check_count("--count", c.count as u64, 1, MAX_BATCH)?;
        for (flag, v) in [("--kx", c.kx), ("--kz", c.kz)] {
            check_count(flag, v.unwrap_or(0) as u64, 0, MAX_CHAIN_STEPS)?;
        }
        if c.split != "test" && c.split != "train" {
            return Err(Error::Config(format!("--split {}: expected test or train", c.split)));
        }
        let kx = c.kx.unwrap_or(if cross { 0 } else { trained.cfg.langevin.kx });
        let kz = c.kz.unwrap_or(trained.cfg.langevin.kz);
        check(kx, kz)?;
        let gpu = Gpu::new(&GpuOptions { backend: c.backend.clone(), ..Default::default() })?;
        let target = match c.target.as_str() {
            "native" => {
                let graphs = tuning_graphs(&trained.model, c.count, &trained.cfg.langevin)?;
                autotune::target_for(&gpu, &graphs.iter().collect::<Vec<_>>(), &Autotune::cli(c.autotune))?.0
            }
            "webgpu" => Target::webgpu(),
            t => return Err(Error::Config(format!("--target {t}: expected native or webgpu"))),
        };
        let store = Store::new();
        // Created by the first file written (write_atomic), so a failed run leaves no folder.
        let out = c.out.clone().unwrap_or_else(|| c.checkpoint.parent().unwrap_or(Path::new(".")).join("sample"));
        Ok(Ctx { gpu, store, trained, out, target, kx, kz, values: vec![], raw: c.raw })
    }

    /// A sampler for `n` at a time, over a fresh store (the `s.*` variables have its size).
    fn sampler(&mut self, n: usize, seed: u64) -> Result<Sampler> {
        self.store = Store::new();
        self.trained.upload(&self.gpu, &mut self.store)?;
        let t = &self.trained;
        Sampler::for_target(&self.gpu, &mut self.store, &t.model, n, &t.cfg.langevin, seed, self.target.clone())
    }

    fn dataset(&self, c: &Common) -> Result<Dataset> {
        let d = &self.trained.cfg.data;
        let (tr, te) = data::load(&d.source(c.data.as_deref()))?;
        if tr.kinds() != self.trained.model.kinds {
            return Err(Error::Data(format!(
                "the data has modalities {}; the checkpoint's model takes {}",
                mmebm::Modality::describe_all(&tr.kinds()),
                mmebm::Modality::describe_all(&self.trained.model.kinds)
            )));
        }
        Ok(if c.split == "train" { tr } else { te })
    }

    /// Writes a grid of the images and the captions (and with --raw, each image and its
    /// values) named `name`; prints the captions.
    fn save(&mut self, name: &str, columns: &[Host]) -> Result<()> {
        let path = self.out.join(format!("{name}.png"));
        let captions = save_samples(&path, columns, self.trained.vocab.as_ref())?;
        if columns.iter().any(|c| c.shape.len() == 4) {
            println!("wrote {}", path.display());
        }
        if !captions.is_empty() {
            for (r, row) in captions.iter().enumerate() {
                println!("{r:3}: {}", row.join(" | "));
            }
            println!("wrote {}", path.with_extension("txt").display());
        }
        if self.raw {
            let dir = self.out.join("raw").join(name);
            for (m, col) in columns.iter().enumerate() {
                self.values.push((format!("{name}.x{m}"), col.clone()));
                if col.shape.len() != 4 {
                    continue;
                }
                let per: usize = col.shape[1..].iter().product();
                for r in 0..col.shape[0] {
                    let mut shape = col.shape.clone();
                    shape[0] = 1;
                    let img = Host::new(&shape, col.data[r * per..(r + 1) * per].to_vec());
                    save_grid_cell(&dir.join(format!("{r:03}_m{m}.png")), &img)?;
                }
            }
        }
        Ok(())
    }

    /// The text modality and its vocabulary (for `--caption`).
    fn text_modality(&self) -> Result<(usize, &data::text::Vocab)> {
        let t = &self.trained;
        match (t.model.kinds.iter().position(|k| k.is_text()), &t.vocab) {
            (Some(m), Some(v)) => Ok((m, v)),
            _ => Err(Error::Config(format!("--caption: {} has no text modality ({})", t.path.display(), mmebm::Modality::describe_all(&t.model.kinds)))),
        }
    }

    fn finish(&self) -> Result<()> {
        if self.raw {
            let path = self.out.join("values.safetensors");
            checkpoint::save(&path, &self.values, &BTreeMap::new())?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// One image as a PNG without the grid's border.
fn save_grid_cell(path: &Path, img: &Host) -> Result<()> {
    let [c, h, w] = [img.shape[1], img.shape[2], img.shape[3]];
    let mut bytes = vec![0u8; h * w * 3];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..3 {
                bytes[(y * w + x) * 3 + ch] = data::unit_to_byte(img.data[((ch % c) * h + y) * w + x]);
            }
        }
    }
    save_png(path, &bytes, w, h)
}

fn parse_list(s: &str, what: &str, limit: usize) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let m: usize = part.parse().map_err(|_| Error::Config(format!("{what} '{s}': '{part}' is not a number (expected e.g. 0 or 0,2)")))?;
        if m >= limit {
            return Err(Error::Config(format!("{what} '{s}': modality {m} does not exist (the model has 0..{})", limit - 1)));
        }
        if v.contains(&m) {
            return Err(Error::Config(format!("{what} '{s}': modality {m} appears twice")));
        }
        v.push(m);
    }
    if v.is_empty() {
        return Err(Error::Config(format!("{what} is empty: name at least one modality")));
    }
    if v.len() == limit {
        return Err(Error::Config(format!("{what} '{s}': every modality is observed, nothing is left to generate")));
    }
    Ok(v)
}

/// `--index N` or `A..B` (end excluded) as (start, end).
fn index_bounds(s: &str) -> Result<(usize, usize)> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
        None => (s.trim().parse::<usize>(), s.trim().parse::<usize>().map(|x| x.saturating_add(1))),
    };
    let (Ok(a), Ok(b)) = (a, b) else { return Err(Error::Config(format!("--index '{s}': expected N or A..B"))) };
    Ok((a, b))
}

fn parse_range(s: &str, len: usize) -> Result<Vec<usize>> {
    let (a, b) = index_bounds(s)?;
    if a >= b || b > len {
        return Err(Error::Config(format!("--index '{s}': the split has examples 0..{len} (end excluded); the range must be non-empty and inside it")));
    }
    Ok((a..b).collect())
}

/// Rows generated at once for the observed examples of `g` (examples × `--count`), checked
/// against [`MAX_BATCH`] before anything is loaded.
fn observed_rows(c: &Common, g: &Given) -> Result<u64> {
    let examples = if !g.input.is_empty() || g.caption.is_some() {
        1
    } else {
        let (a, b) = index_bounds(&g.index)?;
        b.saturating_sub(a).max(1) as u64
    };
    let rows = examples.saturating_mul(c.count as u64);
    check_count(&format!("--index {} × --count {} =", g.index, c.count), rows, 1, MAX_BATCH)?;
    Ok(rows)
}

/// Observed modalities, each `[rows, ..]` with every example repeated `count` times, and which
/// they are: from `--input` files and `--caption`, or dataset examples.
fn observed(ctx: &Ctx, c: &Common, g: &Given) -> Result<(Vec<usize>, Vec<Host>)> {
    let mm = ctx.trained.model.modalities();
    if !g.input.is_empty() || g.caption.is_some() {
        let mut given = Vec::new();
        let mut xs = Vec::new();
        for spec in &g.input {
            let bad = || Error::Config(format!("--input '{spec}': expected mK=FILE.png, e.g. m0=digit.png"));
            let (m, file) = spec.split_once('=').ok_or_else(bad)?;
            let m: usize = m.strip_prefix('m').ok_or_else(bad)?.parse().map_err(|_| bad())?;
            let list = parse_list(&m.to_string(), "--input", mm)?;
            if given.contains(&list[0]) {
                return Err(Error::Config(format!("--input: modality {m} given twice")));
            }
            let Some(image) = ctx.trained.model.kinds[m].image() else {
                return Err(Error::Config(format!("--input m{m}: modality {m} is text; give it with --caption")));
            };
            given.push(m);
            xs.push(repeat(&data::read_png(Path::new(file), image)?, c.count));
        }
        if let Some(caption) = &g.caption {
            let (m, vocab) = ctx.text_modality()?;
            given.push(m);
            xs.push(repeat(&data::text::one_hot(caption, vocab), c.count));
        }
        if given.len() == mm {
            return Err(Error::Config("--input/--caption: every modality is given, nothing is left to generate".into()));
        }
        return Ok((given, xs));
    }
    let given = parse_list(&g.given, "--given", mm)?;
    let ds = ctx.dataset(c)?;
    let idx = parse_range(&g.index, ds.len())?;
    let batch = ds.try_batch(&idx)?;
    Ok((given.clone(), given.iter().map(|&m| repeat(&batch[m], c.count)).collect()))
}

/// Each example of `h` repeated `count` times in a row.
fn repeat(h: &Host, count: usize) -> Host {
    let per: usize = h.shape[1..].iter().product();
    let mut data = Vec::with_capacity(h.data.len() * count);
    for r in 0..h.shape[0] {
        for _ in 0..count {
            data.extend_from_slice(&h.data[r * per..(r + 1) * per]);
        }
    }
    let mut shape = h.shape.clone();
    shape[0] *= count;
    Host::new(&shape, data)
}

/// Compiles every plan of `steps`, so that the time reported is the sampling alone.
fn warm(ctx: &mut Ctx, s: &mut Sampler, steps: &[Step]) -> Result<()> {
    for st in steps {
        s.plan(&ctx.gpu, &mut ctx.store, &st.phase)?;
    }
    Ok(())
}

fn report(what: &str, steps: &[Step], n: usize, seconds: f64) {
    println!(
        "{what}: {n} samples, {} network evaluations each, {:.3}s ({:.4}s per sample, plans compiled beforehand)",
        evaluations(steps),
        seconds,
        seconds / n as f64
    );
}

fn run(cli: Cli) -> Result<()> {
    match cli.mode {
        Mode::Unconditional(c) => {
            let mut ctx = Ctx::new(&c, false, |_, _| Ok(()))?;
            let mm = ctx.trained.model.modalities();
            let mut s = ctx.sampler(c.count, c.seed)?;
            if !ctx.trained.cfg.model.generator {
                let steps = ebm_alone_steps(mm, &[], ctx.kx);
                warm(&mut ctx, &mut s, &steps)?;
                let t = Instant::now();
                s.run(&ctx.gpu, &mut ctx.store, &steps)?;
                report(&format!("EBM from noise (K_x = {})", ctx.kx), &steps, c.count, t.elapsed().as_secs_f64());
                let x = s.read_x(&ctx.gpu, &ctx.store)?;
                ctx.save("ebm_from_noise", &x)?;
                return ctx.finish();
            }
            let gen_steps = unconditional_steps(mm, 0);
            let kx = ctx.kx;
            warm(&mut ctx, &mut s, &unconditional_steps(mm, kx))?;
            let t = Instant::now();
            s.run(&ctx.gpu, &mut ctx.store, &gen_steps)?;
            let gen = s.read_x(&ctx.gpu, &ctx.store)?;
            report("generator", &gen_steps, c.count, t.elapsed().as_secs_f64());
            ctx.save("generator", &gen)?;
            if ctx.kx > 0 {
                let all: Vec<usize> = (0..mm).collect();
                let t = Instant::now();
                s.run(&ctx.gpu, &mut ctx.store, &[Step { phase: Phase::LangevinX { moving: all }, times: ctx.kx }])?;
                let rev = s.read_x(&ctx.gpu, &ctx.store)?;
                report(&format!("EBM revision (K_x = {})", ctx.kx), &unconditional_steps(mm, ctx.kx), c.count, t.elapsed().as_secs_f64());
                ctx.save("revised", &rev)?;
            }
            ctx.finish()
        }
        Mode::Cross { common: c, given: g, mean } => {
            let mut ctx = Ctx::new(&c, true, |_, _| observed_rows(&c, &g).map(drop))?;
            let (given, xs) = observed(&ctx, &c, &g)?;
            let n = xs[0].shape[0];
            let mut s = ctx.sampler(n, c.seed)?;
            let pairs: Vec<(usize, &Host)> = given.iter().copied().zip(xs.iter()).collect();
            let steps = if ctx.trained.cfg.model.generator {
                cross_modal_steps(s.modalities, &given, ctx.kz, ctx.kx, mean)
            } else {
                // No encoder: the missing modalities start from noise and the EBM moves them.
                ebm_alone_steps(s.modalities, &given, c.kx.unwrap_or(ctx.trained.cfg.langevin.kx))
            };
            warm(&mut ctx, &mut s, &steps)?;
            let t = Instant::now();
            s.set_x(&ctx.gpu, &mut ctx.store, &pairs)?;
            s.run(&ctx.gpu, &mut ctx.store, &steps)?;
            let out = s.read_x(&ctx.gpu, &ctx.store)?;
            let what = if ctx.trained.cfg.model.generator { format!("K_z = {}, K_x = {}", ctx.kz, ctx.kx) } else { format!("EBM from noise, K_x = {}", evaluations(&steps)) };
            report(&format!("cross-modal from {given:?} ({what})"), &steps, n, t.elapsed().as_secs_f64());
            let name = format!("cross_from_{}", given.iter().map(|m| format!("m{m}")).collect::<Vec<_>>().join(""));
            ctx.save(&name, &out)?;
            ctx.finish()
        }
        Mode::Interpolate { common: c, from, to, given, frames } => {
            let mut ctx = Ctx::new(&c, false, |_, _| check_count("--frames", frames as u64, 2, MAX_BATCH))?;
            ctx.needs_generator("interpolate")?;
            let mm = ctx.trained.model.modalities();
            parse_list(&given.to_string(), "--given", mm)?;
            let ds = ctx.dataset(&c)?;
            let ends = ds.try_batch(&[from, to]).map_err(|_| Error::Config(format!("--from {from} / --to {to}: the split has examples 0..{}", ds.len())))?;
            // z of each end: the mean of the observed expert, refined by K_z posterior steps.
            let mut s2 = ctx.sampler(2, c.seed)?;
            s2.cross_modal(&ctx.gpu, &mut ctx.store, &[(given, &ends[given])], ctx.kz, 0, true)?;
            let z = s2.read_z(&ctx.gpu, &ctx.store)?;
            let lt = z.shape[1];
            let mut zs = Vec::with_capacity(frames * lt);
            for f in 0..frames {
                let t = f as f32 / (frames - 1) as f32;
                zs.extend((0..lt).map(|k| (1.0 - t) * z.data[k] + t * z.data[lt + k]));
            }
            let mut s = ctx.sampler(frames, c.seed)?;
            ctx.store.set(&ctx.gpu, mmebm::model::phases::SAMPLING.z_post, &Host::new(&[frames, lt], zs))?;
            let all: Vec<usize> = (0..mm).collect();
            s.run(&ctx.gpu, &mut ctx.store, &[Step { phase: Phase::Decode { targets: all }, times: 1 }])?;
            let out = s.read_x(&ctx.gpu, &ctx.store)?;
            ctx.save(&format!("interpolate_{from}_{to}"), &out)?;
            ctx.finish()
        }
        Mode::Trajectory { common: c, given: g, every } => {
            // Every recorded frame is kept: (K / every + 1) × the chain's rows, for both chains.
            let frames = |kx: u32, kz: u32| -> Result<()> {
                check_count("--every", every as u64, 1, MAX_CHAIN_STEPS)?;
                let x = (kx / every + 1) as u64 * c.count as u64;
                check_count(&format!("frames (--kx {kx} / --every {every} + 1) × --count {} =", c.count), x, 1, MAX_BATCH)?;
                let z = (kz / every + 1) as u64 * observed_rows(&c, &g)?;
                check_count(&format!("frames (--kz {kz} / --every {every} + 1) × rows {} =", observed_rows(&c, &g)?), z, 1, MAX_BATCH)
            };
            let mut ctx = Ctx::new(&c, false, frames)?;
            ctx.needs_generator("trajectory")?;
            let mm = ctx.trained.model.modalities();
            let all: Vec<usize> = (0..mm).collect();
            // Data chain: generator samples revised by the EBM, every modality moving.
            let mut s = ctx.sampler(c.count, c.seed)?;
            s.run(&ctx.gpu, &mut ctx.store, &unconditional_steps(mm, 0))?;
            let mut frames = vec![s.read_x(&ctx.gpu, &ctx.store)?];
            let mut done = 0;
            while done < ctx.kx {
                let k = every.min(ctx.kx - done);
                s.run(&ctx.gpu, &mut ctx.store, &[Step { phase: Phase::LangevinX { moving: all.clone() }, times: k }])?;
                done += k;
                frames.push(s.read_x(&ctx.gpu, &ctx.store)?);
            }
            ctx.save("trajectory_x", &frame_rows(&frames))?;
            // Latent chain: z from the observed expert's mean, decoded after every recorded step.
            let (given, xs) = observed(&ctx, &c, &g)?;
            let n = xs[0].shape[0];
            let mut s = ctx.sampler(n, c.seed)?;
            let pairs: Vec<(usize, &Host)> = given.iter().copied().zip(xs.iter()).collect();
            s.set_x(&ctx.gpu, &mut ctx.store, &pairs)?;
            // Only the missing modalities are decoded: the observed ones condition every step.
            let missing: Vec<usize> = all.iter().copied().filter(|m| !given.contains(m)).collect();
            let decode = Step { phase: Phase::Decode { targets: missing }, times: 1 };
            s.run(&ctx.gpu, &mut ctx.store, &[Step { phase: Phase::Encode { given: given.clone(), mean: true }, times: 1 }, decode.clone()])?;
            let mut frames = vec![s.read_x(&ctx.gpu, &ctx.store)?];
            let mut done = 0;
            while done < ctx.kz {
                let k = every.min(ctx.kz - done);
                s.run(&ctx.gpu, &mut ctx.store, &[Step { phase: Phase::LangevinZ { given: given.clone() }, times: k }, decode.clone()])?;
                done += k;
                frames.push(s.read_x(&ctx.gpu, &ctx.store)?);
            }
            ctx.save("trajectory_z", &frame_rows(&frames))?;
            ctx.finish()
        }
    }
}

/// Frames (each one tensor per modality `[n, C, H, W]`) as grid columns whose rows go
/// sample by sample, frame by frame.
fn frame_rows(frames: &[Vec<Host>]) -> Vec<Host> {
    let mm = frames[0].len();
    (0..mm)
        .map(|m| {
            let first = &frames[0][m];
            let n = first.shape[0];
            let per: usize = first.shape[1..].iter().product();
            let mut data = Vec::new();
            for i in 0..n {
                for f in frames {
                    data.extend_from_slice(&f[m].data[i * per..(i + 1) * per]);
                }
            }
            let mut shape = first.shape.clone();
            shape[0] = n * frames.len();
            Host::new(&shape, data)
        })
        .collect()
}
