//! `plot`: training curves from a run's `metrics.jsonl` as an SVG (paper Fig. 2: the EBM loss).
//!
//!     cargo run --release --bin plot -- runs/quick/metrics.jsonl            # → runs/quick/curves.svg
//!     cargo run --release --bin plot -- runs/quick/metrics.jsonl runs/ebm_alone/metrics.jsonl --out cmp.svg
use clap::Parser;
use mmebm::{Error, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(about = "Plot training curves (EBM loss, energies, generator and encoder losses) from metrics.jsonl files")]
struct Args {
    /// One or more metrics.jsonl files written by `train` (several runs share each panel).
    #[arg(required = true)]
    metrics: Vec<PathBuf>,
    /// SVG to write; default: curves.svg beside the first metrics file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Panels: title and the metric keys drawn in it.
const PANELS: [(&str, &[&str]); 8] = [
    ("EBM loss  f(x~) - f(x)  (paper Fig. 2)", &["loss_ebm"]),
    ("mean f: data / chain start g(z~) / revised", &["f_data", "f_start", "f_revised"]),
    ("generator loss (reconstruction)", &["loss_gen"]),
    ("encoder loss  -log q", &["loss_enc"]),
    ("inferred z vs N(0, I): mean E z^2 (1), worst dim, mean |E z|", &["z_sq", "z_sq_worst", "z_mean_abs"]),
    ("data chain: RMS pixel move of x~ from g(z~)", &["x_move"]),
    ("posterior chain: gain in log p(x, z)", &["z_gain"]),
    ("log p(x, z^) per example", &["log_p_z"]),
];

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// (iteration, value) series of `key` in a metrics file; lines that lack it are skipped.
fn series(path: &Path, key: &str) -> Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let j: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Data(format!("{}:{}: not a JSON line: {e}", path.display(), i + 1)))?;
        if let (Some(it), Some(y)) = (j["iteration"].as_f64(), j[key].as_f64()) {
            v.push((it, y));
        }
    }
    Ok(v)
}

fn run(a: Args) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.metrics[0].parent().unwrap_or(Path::new(".")).join("curves.svg"));
    let gerr = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", out.display()));
    // Drawn in memory, then written atomically: a failed plot never leaves half an SVG.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 1600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| gerr(&e))?;
        let colours = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        for (area, (title, keys)) in root.split_evenly((4, 2)).iter().zip(PANELS) {
            let mut lines = Vec::new();
            for (r, path) in a.metrics.iter().enumerate() {
                for (k, key) in keys.iter().enumerate() {
                    let s = series(path, key)?;
                    if !s.is_empty() {
                        let run = path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                        lines.push((format!("{run} {key}"), s, colours[(r * keys.len() + k) % colours.len()]));
                    }
                }
            }
            let pts = lines.iter().flat_map(|l| l.1.iter());
            let (x0, x1, y0, y1) = pts.fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)));
            if lines.is_empty() {
                continue;
            }
            let pad = ((y1 - y0) * 0.05).max(1e-6);
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
                .map_err(|e| gerr(&e))?;
            chart.configure_mesh().x_desc("iteration").draw().map_err(|e| gerr(&e))?;
            for (label, s, c) in lines {
                chart
                    .draw_series(LineSeries::new(s, c.stroke_width(2)))
                    .map_err(|e| gerr(&e))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| gerr(&e))?;
        }
        root.present().map_err(|e| gerr(&e))?;
    }
    mmebm::files::write_atomic(&out, svg.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
