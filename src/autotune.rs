//! Autotuning on first use (issue 19): when an adapter has no saved GEMM choice for the problem
//! sizes a model runs, `train` and `sample` time the candidate variants on the model's own GEMM
//! problems for a few seconds, print one line, save the winner per [`ShapeClass`] in the tuning
//! file (`ops::tuning`) and compile for it; later runs read it back with no timing.
//! `bench --save` stays the thorough version (every variant on large products and the EBM's
//! convolutions, checked against CPU references; it saves one variant for every class).
//!
//! Where the problems come from: the uncompiled graphs of the phases, each op lowered for the
//! default variant; an op whose lowering runs a GEMM entry (`ShapeClass::of_dispatch`) is a
//! problem. Per class the two with the most work (multiply-adds × occurrences) are timed.
//! Also here: the timing code the bench uses ([`prepare`], [`best_time`]).
use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::{eager, Executable, Graph, NodeKind, Store};
use crate::ops::gemm::{select_variant, variant_name, variants, ShapeClass};
use crate::ops::tuning::{self, Choice, TuningFile};
use crate::ops::{numel, Host, Op, Target};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An op's executable, bound to the buffers of its own store (kept alive here).
pub struct Prepared {
    pub exe: Executable,
    pub store: Store,
}

/// `op` on fixed pseudo-random inputs of `shapes` as a one-node plan for `target`, with the
/// embedded shaders or `dir`'s: the executable training would replay.
pub fn prepare(gpu: &Gpu, target: &Target, op: &dyn Op, shapes: &[Vec<usize>], dir: Option<&str>) -> Result<Prepared> {
    let sh: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    let plan = eager::single(op, &sh)?.0.compile(target)?;
    let mut store = Store::new();
    for (i, s) in shapes.iter().enumerate() {
        let data: Vec<f32> = (0..numel(s)).map(|j| (((j * 7919 + i * 31) % 1999) as f32 / 1999.0) - 0.5).collect();
        store.set(gpu, &eager::input(i), &Host::new(s, data))?;
    }
    let exe = Executable::with_shaders(gpu, &plan, &mut store, dir)?;
    Ok(Prepared { exe, store })
}

impl Prepared {
    /// Seconds for one submit, wait included.
    pub fn time_once(&self, gpu: &Gpu) -> Result<f64> {
        let t = Instant::now();
        self.exe.run(gpu, 1)?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// Seconds of one submit of `p`: a warm-up, then the best of up to `max_runs` (at least 4 when a
/// run takes under 0.25 s: the machine may be shared), stopping once `budget` seconds are spent.
pub fn best_time(gpu: &Gpu, p: &Prepared, budget: f64, max_runs: usize) -> Result<f64> {
    let first = p.time_once(gpu)?;
    let min_runs = if first < 0.25 { 4.min(max_runs) } else { 1 };
    let mut best = f64::MAX;
    let mut spent = first;
    for i in 0..max_runs.max(1) {
        let t = p.time_once(gpu)?;
        best = best.min(t);
        spent += t;
        if i + 1 >= min_runs && spent > budget {
            break;
        }
    }
    Ok(best)
}

/// One GEMM-family op of a model's graphs with its shapes.
#[derive(Clone, Debug)]
pub struct Problem {
    pub op: Arc<dyn Op>,
    pub shapes: Vec<Vec<usize>>,
    pub out: Vec<usize>,
    pub class: ShapeClass,
    /// Multiply-adds of one run.
    pub work: f64,
    /// How many times the graphs hold it.
    pub count: usize,
}

/// The GEMM problems of `graphs` (ops whose lowering for `base` with the default variant runs a
/// GEMM entry), each distinct op and shapes once with its count, most total work first.
pub fn problems(graphs: &[&Graph], base: &Target) -> Vec<Problem> {
    // The default variant never pads k (ROW4 is a subgroup path), so the class read from its
    // dispatch is the problem's own.
    let probe = Target { gemm_variant: crate::ops::gemm::DEFAULT_VARIANT.into(), gemm_classes: BTreeMap::new(), ..base.clone() };
    let mut found: HashMap<String, Problem> = HashMap::new();
    for g in graphs {
        for node in &g.nodes {
            let NodeKind::Op(op) = &node.kind else { continue };
            let shapes: Vec<Vec<usize>> = node.inputs.iter().map(|t| g.nodes[t.0].shape.clone()).collect();
            let key = format!("{op:?} {shapes:?}");
            if let Some(p) = found.get_mut(&key) {
                p.count += 1;
                continue;
            }
            let sh: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
            let Ok(low) = op.lower(&sh, &node.shape, &probe) else { continue };
            let Some((class, d)) = low.dispatches.iter().find_map(|d| ShapeClass::of_dispatch(d).map(|c| (c, d))) else { continue };
            let work = d.params[..4].iter().map(|&x| x as f64).product();
            found.insert(key, Problem { op: op.clone(), shapes, out: node.shape.clone(), class, work, count: 1 });
        }
    }
    let mut v: Vec<Problem> = found.into_values().collect();
    v.sort_by(|a, b| (b.work * b.count as f64).total_cmp(&(a.work * a.count as f64)));
    v
}

/// When `train` and `sample` time GEMM variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Never,
    /// On an adapter that is not a CPU (lavapipe keeps its measured defaults) with no saved
    /// choice for the classes the model runs.
    Auto,
    /// On any adapter with no saved choice for them (`--autotune`, `MMEBM_AUTOTUNE=1`).
    Always,
}

/// How autotuning runs.
#[derive(Clone, Debug)]
pub struct Autotune {
    pub when: When,
    /// Seconds of timing, split evenly between the classes to tune; a class stops trying
    /// candidates once its share is spent (its first candidate always runs).
    pub budget: f64,
    /// Only these variants (default: every one the adapter runs).
    pub variants: Option<Vec<String>>,
    /// The tuning file (default: `ops::tuning::tuning_path`).
    pub path: Option<PathBuf>,
    /// Problems timed per class (the ones with the most work).
    pub shapes_per_class: usize,
}

impl Autotune {
    /// No timing: the saved choice or the adapter's default (`Target::of`).
    pub fn off() -> Autotune {
        Autotune { when: When::Never, budget: 3.0, variants: None, path: None, shapes_per_class: 2 }
    }

    /// What `train` and `sample` do: [`When::Auto`]; [`When::Always`] with their `--autotune`
    /// (`force`) or `MMEBM_AUTOTUNE=1`; `MMEBM_AUTOTUNE=0` turns it off.
    pub fn cli(force: bool) -> Autotune {
        let when = match std::env::var("MMEBM_AUTOTUNE").as_deref() {
            _ if force => When::Always,
            Ok("1") => When::Always,
            Ok("0") => When::Never,
            _ => When::Auto,
        };
        Autotune { when, ..Autotune::off() }
    }

    fn wanted(&self, gpu: &Gpu) -> bool {
        let env_variant = std::env::var_os("MMEBM_GEMM_VARIANT").is_some();
        match self.when {
            _ if env_variant => false,
            When::Never => false,
            When::Auto => gpu.info.device_type != wgpu::DeviceType::Cpu,
            When::Always => true,
        }
    }
}

/// What a call of [`target_for`] that considered tuning did.
#[derive(Clone, Debug)]
pub struct Report {
    pub adapter: String,
    /// The variant per class after this run (saved before, or timed now).
    pub choice: BTreeMap<ShapeClass, String>,
    /// The classes timed now (empty: everything came from the tuning file).
    pub timed: Vec<ShapeClass>,
    /// Per class timed now: candidates that ran, of those there were (the budget may stop it
    /// before the last).
    pub compared: BTreeMap<ShapeClass, (usize, usize)>,
    /// Candidate × problem timings made.
    pub measurements: usize,
    /// Candidates left out, with why (lowering, pipeline or validation error, wrong result).
    pub failed: Vec<String>,
    pub seconds: f64,
    /// Where the choice was saved, or why it was not.
    pub saved: std::result::Result<PathBuf, String>,
}

/// The target to compile `graphs` for on `gpu`: `Target::of`'s, after timing the GEMM variants
/// on the graphs' problems when `opts` asks for it and the adapter's saved choice does not cover
/// their classes. The report is `None` when tuning was not considered (not wanted,
/// `MMEBM_GEMM_VARIANT`, or a single saved variant: `bench --save`'s).
pub fn target_for(gpu: &Gpu, graphs: &[&Graph], opts: &Autotune) -> Result<(Target, Option<Report>)> {
    let path = opts.path.clone().or_else(tuning::tuning_path);
    let mut file = path.as_deref().map(TuningFile::load);
    let key = tuning::adapter_key(gpu);
    let saved = file.as_ref().and_then(|f| f.get(&key));
    let target = Target::with_choice(gpu, saved.as_ref());
    let mut chosen = match saved {
        Some(Choice::ByClass(m)) => m,
        None => BTreeMap::new(),
        Some(Choice::One(_)) => return Ok((target, None)),
    };
    if !opts.wanted(gpu) {
        return Ok((target, None));
    }
    let t0 = Instant::now();
    let probs = problems(graphs, &target);
    let mut missing: Vec<ShapeClass> = probs.iter().map(|p| p.class).filter(|c| !chosen.contains_key(c)).collect();
    missing.sort();
    missing.dedup();
    let mut report = Report {
        adapter: key.clone(),
        choice: BTreeMap::new(),
        timed: Vec::new(),
        compared: BTreeMap::new(),
        measurements: 0,
        failed: Vec::new(),
        seconds: 0.0,
        saved: Err("nothing new to save".into()),
    };
    if !missing.is_empty() {
        eprint!("autotune: {key}: ");
        for (i, &class) in missing.iter().enumerate() {
            let deadline = t0 + Duration::from_secs_f64(opts.budget * (i + 1) as f64 / missing.len() as f64);
            if let Some(v) = tune_class(gpu, &target, &probs, class, opts, deadline, &mut report) {
                chosen.insert(class, v);
                report.timed.push(class);
            }
        }
        report.seconds = t0.elapsed().as_secs_f64();
        report.saved = save(file.as_mut(), &key, &chosen);
        eprintln!("{}", summary(&report, &chosen));
    }
    report.choice = chosen.clone();
    Ok((Target::with_choice(gpu, Some(&Choice::ByClass(chosen))), Some(report)))
}

/// Records `chosen` for `key` in `file` (re-read first: another process may have added its
/// own adapter meanwhile).
fn save(file: Option<&mut TuningFile>, key: &str, chosen: &BTreeMap<ShapeClass, String>) -> std::result::Result<PathBuf, String> {
    let file = file.ok_or("no tuning file location: set MMEBM_TUNING or HOME")?;
    *file = TuningFile::load(&file.path.clone());
    let mut merged = match file.get(key) {
        Some(Choice::ByClass(m)) => m,
        _ => BTreeMap::new(),
    };
    merged.extend(chosen.iter().map(|(c, v)| (*c, v.clone())));
    file.set(key, &Choice::ByClass(merged));
    file.save().map(|_| file.path.clone()).map_err(|e| e.to_string())
}

/// The progress line's end: `tiled128 on large (15 of 15 variants tried), sg64w32 on small
/// (15 of 15 variants tried); 2.1 s, 60 timings; saved to P`.
fn summary(r: &Report, chosen: &BTreeMap<ShapeClass, String>) -> String {
    let picks: Vec<String> = r
        .compared
        .iter()
        .rev()
        .map(|(c, (ran, of))| match chosen.get(c).filter(|_| r.timed.contains(c)) {
            Some(v) => format!("{v} on {} ({ran} of {of} variants tried)", c.name()),
            None => format!("nothing ran on {}", c.name()),
        })
        .collect();
    let failed = if r.failed.is_empty() { String::new() } else { format!("; left out: {}", r.failed.join("; ")) };
    let saved = match &r.saved {
        Ok(p) => format!("saved to {}", p.display()),
        Err(e) => format!("not saved: {e}"),
    };
    format!("{}; {:.1} s, {} timings{failed}; {saved}", picks.join(", "), r.seconds, r.measurements)
}

/// The variants to try on `class`: those the adapter runs (and `opts` names), the one `base`
/// already gives the class first (it is the yardstick the others' results are checked against).
fn candidates(base: &Target, class: ShapeClass, opts: &Autotune) -> Vec<String> {
    let first = select_variant(base, class).map(|v| v.name.to_string()).unwrap_or_else(|_| variant_name(base, class).to_string());
    let mut names = vec![first.clone()];
    for v in variants() {
        let runs = v.runs_on(base);
        let named = opts.variants.as_ref().is_none_or(|w| w.iter().any(|n| n == v.name));
        if runs && named && v.name != first {
            names.push(v.name.to_string());
        }
    }
    if let Some(w) = &opts.variants {
        names.retain(|n| w.contains(n));
    }
    names
}

/// Times the candidates on `class`'s heaviest problems until `deadline`; returns the fastest
/// (total seconds over the problems, each weighted by its count). Failures go to the report.
fn tune_class(gpu: &Gpu, base: &Target, probs: &[Problem], class: ShapeClass, opts: &Autotune, deadline: Instant, report: &mut Report) -> Option<String> {
    let all: Vec<&Problem> = probs.iter().filter(|p| p.class == class).collect();
    let timed = &all[..all.len().min(opts.shapes_per_class.max(1))];
    let mut reference: Vec<Option<Host>> = vec![None; timed.len()];
    let mut best: Option<(f64, String)> = None;
    let per_run = (opts.budget / 20.0).max(0.01);
    let names = candidates(base, class, opts);
    let mut ran = 0;
    for (i, name) in names.iter().enumerate() {
        if i > 0 && Instant::now() > deadline {
            break;
        }
        let t = Target { gemm_variant: name.clone(), gemm_classes: BTreeMap::new(), ..base.clone() };
        ran += 1;
        match time_candidate(gpu, &t, &all, timed, &mut reference, per_run) {
            Ok(s) => {
                report.measurements += timed.len();
                if best.as_ref().is_none_or(|b| s < b.0) {
                    best = Some((s, name.clone()));
                }
            }
            Err(e) => report.failed.push(format!("{name} on {}: {e}", class.name())),
        }
    }
    report.compared.insert(class, (ran, names.len()));
    best.map(|b| b.1)
}

/// Weighted seconds of target `t`'s variant over `timed`, after checking that it lowers every
/// problem of the class (`all`); each result is compared with the first candidate's.
fn time_candidate(gpu: &Gpu, t: &Target, all: &[&Problem], timed: &[&Problem], reference: &mut [Option<Host>], per_run: f64) -> std::result::Result<f64, String> {
    for p in all {
        let sh: Vec<&[usize]> = p.shapes.iter().map(|s| s.as_slice()).collect();
        p.op.lower(&sh, &p.out, t).map_err(|e| e.to_string())?;
    }
    let mut total = 0.0;
    for (p, r) in timed.iter().zip(reference.iter_mut()) {
        let prepared = prepare(gpu, t, p.op.as_ref(), &p.shapes, None).map_err(|e| e.to_string())?;
        let s = best_time(gpu, &prepared, per_run, 4).map_err(|e| e.to_string())?;
        let got = prepared.store.get(gpu, eager::OUT).map_err(|e| e.to_string())?;
        match r {
            Some(want) => agrees(&got, want).map_err(|e| format!("{}: {e}", p.op.name()))?,
            None => *r = Some(got),
        }
        total += s * p.count as f64;
    }
    Ok(total)
}

/// Whether `got` matches `want` to within summation-order differences (relative to the
/// largest magnitude: the inputs are all of one scale); NaN never matches.
fn agrees(got: &Host, want: &Host) -> std::result::Result<(), String> {
    let scale = want.data.iter().fold(0f32, |m, x| m.max(x.abs()));
    let tol = 1e-3 * scale + 1e-5;
    let differs = |(g, w): (&f32, &f32)| {
        let close = (g - w).abs() <= tol; // false for NaN
        !close
    };
    match got.data.iter().zip(&want.data).position(differs) {
        Some(i) => Err(format!("gave {} at element {i} where the first candidate gives {}", got.data[i], want.data[i])),
        None => Ok(()),
    }
}
