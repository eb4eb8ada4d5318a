//! Data layer: synthetic dataset, PolyMNIST loader, prefetcher, grid writer. CPU only.
use mmebm::data::prefetch::epoch_order;
use mmebm::data::synthetic::{render_example, synthetic_split_threads};
use mmebm::data::{
    grid::grid_size, load_polymnist, load_split, save_grid, synthetic, Dataset, Prefetch, Sampler, SamplerState,
    Split, POLYMNIST_SHAPE,
};
use mmebm::ops::Host;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The default-size synthetic dataset, generated once per test binary.
fn default_sets() -> &'static (Dataset, Dataset) {
    static SETS: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    SETS.get_or_init(|| {
        let t = Instant::now();
        let s = synthetic(10_000, 2_000, 0);
        eprintln!("synthetic 10,000 + 2,000 (all cores): {:.3} s", t.elapsed().as_secs_f64());
        s
    })
}

// ---------------------------------------------------------------------------------------------
// Synthetic dataset.

#[test]
fn synthetic_shapes_and_range() {
    let (train, test) = default_sets();
    assert_eq!(train.len(), 10_000);
    assert_eq!(test.len(), 2_000);
    assert_eq!(train.modalities(), 5);
    assert_eq!(train.image_shape(), [3, 28, 28]);
    let idx: Vec<usize> = (0..64).map(|i| i * 37).collect();
    let xs = train.batch(&idx);
    assert_eq!(xs.len(), 5);
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for x in &xs {
        assert_eq!(x.shape, vec![64, 3, 28, 28]);
        for &v in &x.data {
            assert!((-1.0..=1.0).contains(&v), "value {v} outside [-1, 1]");
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    assert!(lo < -0.9 && hi > 0.9, "pixels should span most of [-1, 1]: {lo}..{hi}");
    assert_eq!(train.batch_labels(&idx).unwrap(), idx.iter().map(|&i| train.labels()[i]).collect::<Vec<_>>());
    assert!(train.try_batch(&[10_000]).is_err());
    assert!(train.batch_labels(&[10_000]).is_none());
}

#[test]
fn synthetic_is_deterministic() {
    let (a_tr, a_te) = synthetic(300, 120, 7);
    let (b_tr, b_te) = synthetic(300, 120, 7);
    assert_eq!(a_tr, b_tr);
    assert_eq!(a_te, b_te);
    // Thread count does not matter; a longer split extends a shorter one (per-index).
    let one = synthetic_split_threads(Split::Train, 300, 7, 1);
    assert_eq!(one, a_tr);
    let longer = synthetic_split_threads(Split::Train, 333, 7, 3);
    assert_eq!(longer.take(300), a_tr);
    let mut img = vec![0u8; 3 * 28 * 28];
    render_example(Split::Test, 42, 3, 7, &mut img);
    assert_eq!(&img[..], a_te.image_bytes(3, 42).unwrap());
    // Splits and seeds differ.
    assert_ne!(a_tr.modality_bytes(0).unwrap()[..120 * 2352], a_te.modality_bytes(0).unwrap()[..]);
    assert_ne!(a_tr.labels()[..120], a_te.labels()[..]);
    let (empty, small) = synthetic(0, 3, 7);
    assert!(empty.is_empty());
    assert_eq!(small, a_te.take(3));
    let (c_tr, _) = synthetic(300, 10, 8);
    assert_ne!(a_tr.modality_bytes(0), c_tr.modality_bytes(0));
    // A fingerprint of the bytes, to compare across machines by eye.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in 0..5 {
        for &b in a_tr.modality_bytes(m).unwrap() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    eprintln!("synthetic(300, 120, 7) train FNV-1a: {h:016x}");
}

#[test]
fn synthetic_generation_is_fast() {
    let _ = default_sets();
    let t = Instant::now();
    let tr = synthetic_split_threads(Split::Train, 10_000, 0, 1);
    let te = synthetic_split_threads(Split::Test, 2_000, 0, 1);
    let secs = t.elapsed().as_secs_f64();
    eprintln!("synthetic 10,000 + 2,000 on one thread: {secs:.3} s");
    assert_eq!(&tr, &default_sets().0);
    assert_eq!(&te, &default_sets().1);
    assert!(secs < 6.0, "generation took {secs:.2} s on one thread");
}

#[test]
fn synthetic_labels_are_balanced() {
    let (train, test) = default_sets();
    for (ds, n) in [(train, 1000), (test, 200)] {
        let mut count = [0usize; 10];
        for &l in ds.labels() {
            count[l as usize] += 1;
        }
        assert_eq!(count, [n; 10], "{}", ds.name());
    }
    // Not a fixed cycle.
    let l = train.labels();
    assert!((0..100).any(|i| l[i] != l[i + 10]));
}

#[test]
fn synthetic_modalities_share_label_not_pixels() {
    let (train, _) = default_sets();
    for i in 0..200 {
        for m in 1..5 {
            assert_ne!(train.image_bytes(0, i), train.image_bytes(m, i), "example {i}, m0 vs m{m}");
        }
    }
    // Two examples of the same class in the same modality differ too.
    let l = train.labels();
    let j = (1..100).find(|&j| l[j] == l[0]).unwrap();
    assert_ne!(train.image_bytes(2, 0), train.image_bytes(2, j));
}

/// Nearest-class-mean accuracy on raw pixels of modality `m`.
fn ncm_accuracy(train: &Dataset, test: &Dataset, m: usize) -> f64 {
    let per = 3 * 28 * 28;
    let mut mean = vec![vec![0f64; per]; 10];
    let mut count = [0usize; 10];
    for i in 0..train.len() {
        let c = train.labels()[i] as usize;
        count[c] += 1;
        for (s, &b) in mean[c].iter_mut().zip(train.image_bytes(m, i).unwrap()) {
            *s += b as f64;
        }
    }
    for c in 0..10 {
        for s in mean[c].iter_mut() {
            *s /= count[c] as f64;
        }
    }
    let mut right = 0;
    for i in 0..test.len() {
        let x = test.image_bytes(m, i).unwrap();
        let best = (0..10)
            .map(|c| (c, mean[c].iter().zip(x).map(|(a, &b)| (a - b as f64).powi(2)).sum::<f64>()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        if best == test.labels()[i] as usize {
            right += 1;
        }
    }
    right as f64 / test.len() as f64
}

#[test]
fn synthetic_class_is_learnable() {
    let (train, test) = default_sets();
    let accs: Vec<f64> = (0..5).map(|m| ncm_accuracy(train, test, m)).collect();
    eprintln!("nearest-class-mean test accuracy per modality: {accs:.3?}");
    for (m, a) in accs.iter().enumerate() {
        assert!(*a > 0.3, "m{m}: nearest-class-mean accuracy {a:.3} (chance 0.1)");
    }
}

#[test]
fn synthetic_sample_grid() {
    let (_, test) = default_sets();
    // Twenty examples: two of each digit, ordered by label.
    let mut idx = Vec::new();
    for d in 0..10u8 {
        idx.extend(test.labels().iter().enumerate().filter(|(_, &l)| l == d).map(|(i, _)| i).take(2));
    }
    let cols = test.batch(&idx);
    let path = Path::new("/tmp/synthetic_grid.png");
    save_grid(path, &cols).unwrap();
    let img = image::open(path).unwrap();
    assert_eq!((img.width() as usize, img.height() as usize), grid_size(5, 20, 28, 28));
}

// ---------------------------------------------------------------------------------------------
// Grid writer.

#[test]
fn grid_has_right_size_and_values() {
    let dir = temp_dir("grid");
    let b = 3;
    let mk = |v: f32| Host::new(&[b, 3, 28, 28], vec![v; b * 3 * 28 * 28]);
    let cols = vec![mk(-1.0), mk(1.0), Host::new(&[b, 1, 28, 28], vec![0.0; b * 28 * 28])];
    let path = dir.join("g.png");
    save_grid(&path, &cols).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (3 * 29 + 1, 3 * 29 + 1));
    assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(30, 1).0, [255, 255, 255]);
    assert_eq!(img.get_pixel(59, 1).0, [128, 128, 128]);
    assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
    // Only the final file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // Bad shapes are errors, not panics.
    assert!(save_grid(&path, &[]).is_err());
    assert!(save_grid(&path, &[mk(0.0), Host::new(&[2, 3, 28, 28], vec![0.0; 2 * 2352])]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Prefetcher.

#[test]
fn sampler_epochs_are_permutations() {
    let mut s = Sampler::new(100, 32, 5).unwrap();
    assert_eq!(s.batches_per_epoch(), 3);
    for epoch in 0..3u64 {
        let mut seen = Vec::new();
        for k in 0..3 {
            let (idx, at) = s.next_indices();
            assert_eq!(at, SamplerState { seed: 5, epoch, position: 32 * k });
            seen.extend(idx);
        }
        assert_eq!(s.state().epoch, epoch + 1);
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 96, "epoch {epoch} repeats an index");
        assert_eq!(seen[..], epoch_order(100, 5, epoch)[..96]);
    }
    assert_ne!(epoch_order(100, 5, 0), epoch_order(100, 5, 1));
    assert_ne!(epoch_order(100, 5, 0), epoch_order(100, 6, 0));
    assert!(Sampler::new(10, 0, 0).is_err());
    assert!(Sampler::new(10, 11, 0).is_err());
    assert!(Sampler::from_state(10, 2, SamplerState { seed: 0, epoch: 0, position: 11 }).is_err());
}

#[test]
fn prefetch_is_reproducible_and_resumable() {
    let (ds, _) = synthetic(250, 10, 3);
    let ds = Arc::new(ds);
    let mut a = Prefetch::new(ds.clone(), 16, 99).unwrap();
    let mut s = Sampler::new(250, 16, 99).unwrap();
    let mut saved = None;
    let mut after = Vec::new();
    for k in 0..40 {
        let b = a.next();
        let (idx, at) = s.next_indices();
        assert_eq!(b.indices, idx);
        assert_eq!(b.at, at);
        assert_eq!(b.next, s.state());
        assert_eq!(a.state(), b.next);
        assert_eq!(b.x, ds.batch(&idx));
        assert_eq!(b.labels, ds.batch_labels(&idx).unwrap());
        if k == 22 {
            saved = Some(a.state());
        }
        if k > 22 {
            after.push(b.indices.clone());
        }
    }
    // 250 / 16 = 15 batches per epoch: batch 23 is in epoch 1.
    let saved = saved.unwrap();
    assert_eq!((saved.epoch, saved.position), (1, 8 * 16));
    let mut r = Prefetch::from_state(ds.clone(), 16, saved).unwrap();
    for want in &after {
        assert_eq!(&r.next().indices, want);
    }
    // Another seed gives another order; dropping mid-stream does not hang.
    let mut c = Prefetch::new(ds.clone(), 16, 100).unwrap();
    assert_ne!(c.next().indices, Prefetch::new(ds.clone(), 16, 99).unwrap().next().indices);
    drop(c);
    assert!(Prefetch::new(ds, 251, 0).is_err());
}

// ---------------------------------------------------------------------------------------------
// PolyMNIST loader.

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "mmebm-data-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Value of channel `ch` at (x, y) of fake image `index` of modality `m`.
fn fake_px(m: usize, index: u64, x: u32, y: u32, ch: usize) -> u8 {
    ((m as u64 * 50 + index * 7 + x as u64 * 3 + y as u64 * 5 + ch as u64 * 11) % 256) as u8
}

fn write_rgb(path: &Path, m: usize, index: u64, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([0, 1, 2].map(|c| fake_px(m, index, x, y, c))));
    img.save(path).unwrap();
}

/// A fake PolyMNIST tree: 3 modalities; train has indices [0, 2, 10, 1] (numeric sort differs
/// from name sort), test has [0, 1]. Label of index i is (i * 3) % 10.
fn fake_tree(tag: &str) -> PathBuf {
    let root = temp_dir(tag);
    for (split, indices) in [("train", &[0u64, 2, 10, 1][..]), ("test", &[0, 1][..])] {
        for m in 0..3 {
            let d = root.join(split).join(format!("m{m}"));
            std::fs::create_dir_all(&d).unwrap();
            for &i in indices {
                write_rgb(&d.join(format!("{i}.{}.png", (i * 3) % 10)), m, i, 28, 28);
            }
        }
    }
    root
}

#[test]
fn polymnist_loads_fake_tree() {
    let root = fake_tree("ok");
    let (train, test) = load_polymnist(&root).unwrap();
    assert_eq!(train.modalities(), 3);
    assert_eq!(train.len(), 4);
    assert_eq!(test.len(), 2);
    assert_eq!(train.image_shape(), POLYMNIST_SHAPE);
    assert_eq!(train.labels(), &[0, 3, 6, 0]); // indices 0, 1, 2, 10
    assert!(train.notes().is_empty());
    let xs = train.batch(&[0, 1, 2, 3]);
    assert_eq!(xs.len(), 3);
    for (m, x) in xs.iter().enumerate() {
        assert_eq!(x.shape, vec![4, 3, 28, 28]);
        for (pos, index) in [0u64, 1, 2, 10].into_iter().enumerate() {
            for (ch, x_, y_) in [(0usize, 0u32, 0u32), (1, 5, 7), (2, 27, 27), (0, 13, 2)] {
                let got = x.data[((pos * 3 + ch) * 28 + y_ as usize) * 28 + x_ as usize];
                let want = fake_px(m, index, x_, y_, ch) as f32 / 127.5 - 1.0;
                assert_eq!(got, want, "m{m} index {index} ch {ch} ({x_}, {y_})");
            }
        }
    }
    let first2 = load_split(&root, "train", POLYMNIST_SHAPE, Some(2)).unwrap();
    assert_eq!(first2.len(), 2);
    assert_eq!(first2.labels(), &[0, 3]);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn polymnist_promotes_grey() {
    let root = fake_tree("grey");
    let p = root.join("train/m1/2.6.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8])).save(&p).unwrap();
    let train = load_split(&root, "train", POLYMNIST_SHAPE, None).unwrap();
    assert_eq!(train.notes().len(), 1, "{:?}", train.notes());
    assert!(train.notes()[0].contains("m1") && train.notes()[0].contains("grey"), "{:?}", train.notes());
    let b = train.image_bytes(1, 2).unwrap();
    assert_eq!(b[28 * 3 + 5], 5 * 9 + 3);
    assert_eq!(b[..784], b[784..1568]);
    assert_eq!(b[..784], b[1568..]);
    let _ = std::fs::remove_dir_all(&root);
}

/// Breaks a fresh fake tree with `f`, loads it, and checks the error names `needle`.
fn expect_err(tag: &str, needle: &str, f: impl FnOnce(&Path)) {
    let root = fake_tree(tag);
    f(&root);
    let err = match load_polymnist(&root) {
        Ok(_) => panic!("{tag}: loaded a broken tree"),
        Err(e) => e.to_string(),
    };
    eprintln!("{tag}: {err}");
    assert!(!err.contains('\n'), "{tag}: message is not one line: {err}");
    assert!(err.contains(needle), "{tag}: message does not name {needle}: {err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn polymnist_errors_name_the_culprit() {
    expect_err("nosplit", "test", |r| std::fs::remove_dir_all(r.join("test")).unwrap());
    expect_err("nomod", "m1", |r| std::fs::remove_dir_all(r.join("train/m1")).unwrap());
    expect_err("nomods", "m0", |r| {
        for m in 0..3 {
            std::fs::remove_dir_all(r.join(format!("test/m{m}"))).unwrap();
        }
    });
    expect_err("badname", "abc.png", |r| std::fs::write(r.join("train/m2/abc.png"), b"x").unwrap());
    expect_err("badlabel", "5.12.png", |r| write_rgb(&r.join("train/m0/5.12.png"), 0, 5, 28, 28));
    expect_err("corrupt", "1.3.png", |r| std::fs::write(r.join("train/m1/1.3.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap());
    expect_err("size", "10.0.png", |r| write_rgb(&r.join("train/m2/10.0.png"), 2, 10, 32, 28));
    expect_err("rgba", "2.6.png", |r| {
        image::RgbaImage::from_pixel(28, 28, image::Rgba([1, 2, 3, 255])).save(r.join("train/m0/2.6.png")).unwrap();
    });
    expect_err("count", "m1", |r| std::fs::remove_file(r.join("train/m1/10.0.png")).unwrap());
    expect_err("label", "10.1.png", |r| {
        let d = r.join("train/m2");
        std::fs::rename(d.join("10.0.png"), d.join("10.1.png")).unwrap();
    });
    expect_err("index", "test/m1/1.3.png", |r| {
        let d = r.join("test/m1");
        std::fs::rename(d.join("0.0.png"), d.join("11.0.png")).unwrap();
    });
    expect_err("dup", "01.3.png", |r| write_rgb(&r.join("train/m0/01.3.png"), 0, 1, 28, 28));
}
