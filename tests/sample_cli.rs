//! The `sample` binary on the shared tiny trained checkpoints (`common::tiny_run`): every mode
//! writes images of the right size and count, the same seed gives identical files, and bad input
//! gives one clear line.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
mod common;
use common::{tiny_run, TinyRun};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-sample-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The shared tiny run's checkpoint (configs/tiny.toml).
fn checkpoint() -> PathBuf {
    tiny_run(TinyRun::Ours).join("checkpoint.safetensors")
}

fn sample(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sample")).args(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let o = sample(args);
    assert!(o.status.success(), "sample {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// One clear line: exit status 1 and a single `error: ...` line on stderr mentioning `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let o = sample(args);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("adapter:")).collect();
    assert_eq!(o.status.code(), Some(1), "sample {args:?} should fail: {err}");
    assert_eq!(lines.len(), 1, "sample {args:?}: expected one error line, got:\n{err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "sample {args:?}: '{}' does not mention '{needle}'", lines[0]);
}

fn png_size(p: &Path) -> (u32, u32) {
    image::image_dimensions(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Grid of `cols` × `rows` 28×28 cells with 1-px separators.
fn grid(cols: u32, rows: u32) -> (u32, u32) {
    (cols * 29 + 1, rows * 29 + 1)
}

#[test]
fn every_mode_writes_the_right_images() {
    let c = checkpoint();
    let c = c.to_str().unwrap();
    let out = tmp("modes");
    let o = out.to_str().unwrap();
    ok(&["unconditional", "--checkpoint", c, "--out", o, "--count", "3", "--kx", "2", "--raw"]);
    assert_eq!(png_size(&out.join("generator.png")), grid(5, 3));
    assert_eq!(png_size(&out.join("revised.png")), grid(5, 3));
    assert_eq!(png_size(&out.join("raw/revised/002_m4.png")), (28, 28));
    assert_eq!(std::fs::read_dir(out.join("raw/generator")).unwrap().count(), 15);
    ok(&["cross", "--checkpoint", c, "--out", o, "--given", "0,2", "--index", "3..5", "--count", "2", "--kz", "2", "--kx", "1"]);
    assert_eq!(png_size(&out.join("cross_from_m0m2.png")), grid(5, 4));
    ok(&["interpolate", "--checkpoint", c, "--out", o, "--from", "1", "--to", "2", "--frames", "5"]);
    assert_eq!(png_size(&out.join("interpolate_1_2.png")), grid(5, 5));
    ok(&["trajectory", "--checkpoint", c, "--out", o, "--count", "1", "--kx", "4", "--kz", "3", "--every", "2"]);
    assert_eq!(png_size(&out.join("trajectory_x.png")), grid(5, 3)); // start + after 2 + after 4
    assert_eq!(png_size(&out.join("trajectory_z.png")), grid(5, 3)); // start + after 2 + after 3
    // A user's PNG (any size of the model's aspect ratio is resized).
    let png = out.join("digit.png");
    image::save_buffer(&png, &vec![200u8; 56 * 56], 56, 56, image::ExtendedColorType::L8).unwrap();
    ok(&["cross", "--checkpoint", c, "--out", o, "--input", &format!("m1={}", png.display()), "--count", "3", "--raw"]);
    assert_eq!(png_size(&out.join("cross_from_m1.png")), grid(5, 3));
    assert!(out.join("values.safetensors").exists());
}

#[test]
fn the_same_seed_gives_identical_files() {
    let c = checkpoint();
    let c = c.to_str().unwrap();
    let (a, b, d) = (tmp("seed-a"), tmp("seed-b"), tmp("seed-c"));
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&d, "8")] {
        ok(&["cross", "--checkpoint", c, "--out", dir.to_str().unwrap(), "--given", "1", "--index", "4", "--count", "3", "--kz", "2", "--kx", "2", "--seed", seed, "--raw"]);
    }
    let read = |p: &Path| std::fs::read(p.join("values.safetensors")).unwrap();
    assert_eq!(read(&a), read(&b), "same seed, different values");
    assert_eq!(std::fs::read(a.join("cross_from_m1.png")).unwrap(), std::fs::read(b.join("cross_from_m1.png")).unwrap());
    assert_ne!(read(&a), read(&d), "a different seed should change the samples");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let c = checkpoint();
    let c = c.to_str().unwrap();
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--given", "7"], "modality 7 does not exist");
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--given", "a"], "not a number");
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--given", "0,1,2,3,4"], "nothing is left to generate");
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--index", "999"], "--index");
    fails_with(&["unconditional", "--checkpoint", "/nonexistent/checkpoint.safetensors"], "no such checkpoint");
    std::fs::create_dir_all(&out).unwrap();
    let wide = out.join("wide.png");
    image::save_buffer(&wide, &vec![0u8; 30 * 20], 30, 20, image::ExtendedColorType::L8).unwrap();
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--input", &format!("m0={}", wide.display())], "30×20");
    let junk = out.join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--input", &format!("m0={}", junk.display())], "cannot read");
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--input", "m0"], "expected mK=FILE.png");
    let notckpt = out.join("not.safetensors");
    std::fs::write(&notckpt, b"garbage").unwrap();
    fails_with(&["unconditional", "--checkpoint", notckpt.to_str().unwrap()], "not a readable safetensors");
}

#[test]
fn an_ebm_alone_model_samples_from_noise() {
    let out = tmp("alone");
    let c = tiny_run(TinyRun::Alone).join("checkpoint.safetensors");
    let (c, o) = (c.to_str().unwrap(), out.to_str().unwrap());
    ok(&["unconditional", "--checkpoint", c, "--out", o, "--count", "2", "--kx", "2"]);
    assert_eq!(png_size(&out.join("ebm_from_noise.png")), grid(5, 2));
    ok(&["cross", "--checkpoint", c, "--out", o, "--given", "3", "--count", "2", "--kx", "2"]);
    assert_eq!(png_size(&out.join("cross_from_m3.png")), grid(5, 2));
    fails_with(&["interpolate", "--checkpoint", c, "--out", o, "--from", "0", "--to", "1"], "EBM-alone");
}

/// Width of the caption panel beside a grid (40 characters of 6 pixels and a margin).
const CAPTIONS: u32 = 40 * 6 + 4;

/// Captions (issue 18) on the tiny birds run: images from a typed caption, captions from a
/// dataset image or a PNG (printed and written beside the grid), unconditional image–caption
/// pairs (captions written beside the images and in a text file); and one clear line for a caption given to a model without text or a PNG given for the
/// text modality.
#[test]
fn captions_in_and_out() {
    let ckpt = tiny_run(TinyRun::Captions).join("checkpoint.safetensors");
    let c = ckpt.to_str().unwrap();
    let out = tmp("captions");
    let o = out.to_str().unwrap();
    let run = |args: &[&str]| -> String {
        let r = sample(args);
        assert!(r.status.success(), "sample {args:?}: {}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    // Text → image: one 16×16 image per sample beside the given caption (as the vocabulary
    // reads it: the tiny run's 40 birds may lack a word).
    run(&["cross", "--checkpoint", c, "--out", o, "--caption", "a small red bird with a short bill", "--count", "3"]);
    assert_eq!(png_size(&out.join("cross_from_m1.png")), (16 + 2 + CAPTIONS, 3 * 17 + 1));
    let given = std::fs::read_to_string(out.join("cross_from_m1.txt")).unwrap();
    assert_eq!(given.lines().count(), 3);
    assert!(given.lines().all(|l| l.starts_with("a small red bird with a short")), "{given}");
    // Image → text: captions printed, one line per sample, and written beside the grid.
    let printed = run(&["cross", "--checkpoint", c, "--out", o, "--given", "0", "--index", "0..2", "--count", "2"]);
    let file = std::fs::read_to_string(out.join("cross_from_m0.txt")).unwrap();
    assert_eq!(file.lines().count(), 4, "{file}");
    for line in file.lines() {
        assert!(printed.contains(line), "{line} not printed in {printed}");
    }
    let png = out.join("bird.png");
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])).save(&png).unwrap();
    run(&["cross", "--checkpoint", c, "--out", o, "--input", &format!("m0={}", png.display()), "--count", "2"]);
    assert_eq!(std::fs::read_to_string(out.join("cross_from_m0.txt")).unwrap().lines().count(), 2);
    // Unconditional pairs: images in the grid, their captions in the text file, row by row.
    run(&["unconditional", "--checkpoint", c, "--out", o, "--count", "3", "--kx", "1"]);
    for name in ["generator", "revised"] {
        assert_eq!(png_size(&out.join(format!("{name}.png"))), (16 + 2 + CAPTIONS, 3 * 17 + 1));
        assert_eq!(std::fs::read_to_string(out.join(format!("{name}.txt"))).unwrap().lines().count(), 3);
    }
    fails_with(&["cross", "--checkpoint", checkpoint().to_str().unwrap(), "--out", o, "--caption", "a red bird"], "no text modality");
    fails_with(&["cross", "--checkpoint", c, "--out", o, "--input", &format!("m1={}", png.display())], "modality 1 is text");
    let _ = std::fs::remove_dir_all(&out);
}
