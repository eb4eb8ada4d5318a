//! The built-in caption data (`data::birds`) and the vocabulary (`data::text`): deterministic,
//! within CUB's limits (vocabulary under 300 words, at most 32 tokens), captions that state the
//! drawn bird's attributes exactly, images that show them, disjoint splits; caption datasets that pair every caption with its image.
use mmebm::data::birds::{bird, birds, birds_split, parse_caption, render_bird, template_of, Bird, BIRD_SHAPE, CAPTIONS_PER_IMAGE, COLOURS};
use mmebm::data::synthetic::Split;
use mmebm::data::text::{captions_of, one_hot, words, Vocab, END, MAX_TOKENS, PAD, UNK};
use mmebm::data::Dataset;
use mmebm::Modality;
use std::sync::Arc;

#[test]
fn birds_are_deterministic_and_the_splits_differ() {
    let (a, b) = (birds_split(Split::Train, 20, 3), birds_split(Split::Train, 20, 3));
    assert_eq!(a.images, b.images);
    assert_eq!(a.captions, b.captions);
    let other = birds_split(Split::Train, 20, 4);
    assert_ne!(a.images, other.images, "the seed changes the birds");
    let test = birds_split(Split::Test, 20, 3);
    for i in 0..20 {
        assert_ne!(a.image(i), test.image(i), "train and test draw from different streams");
    }
    assert_eq!(a.image(0).len(), BIRD_SHAPE.iter().product::<usize>());
}

#[test]
fn captions_fit_cub_limits_and_state_the_attributes() {
    let (train, _) = birds(300, 0, 0);
    let vocab = Vocab::build(train.captions.iter().flatten().map(String::as_str), 3);
    assert!(vocab.len() < 300, "{} words", vocab.len());
    let truth = train.birds.as_ref().unwrap();
    let mut seen = [false; 8];
    for (i, caps) in train.captions.iter().enumerate() {
        assert_eq!(caps.len(), CAPTIONS_PER_IMAGE);
        for c in caps {
            let ids = vocab.encode(c);
            assert!(words(c).len() < MAX_TOKENS, "{c}");
            assert!(!ids.contains(&UNK), "every word of a built-in caption is in the vocabulary: {c}");
            assert_eq!(vocab.decode(&ids), words(c).join(" "));
            let m = parse_caption(c);
            let (stated, agree) = m.agreement(&truth[i]);
            assert!(stated >= 2 && agree == stated, "{c}: {m:?} vs {:?}", truth[i]);
            for (k, s) in [m.body.is_some(), m.wing.is_some(), m.head.is_some(), m.belly.is_some(), m.bill.is_some(), m.size.is_some(), m.long_bill.is_some(), m.perched.is_some()].into_iter().enumerate() {
                seen[k] |= s;
            }
        }
    }
    assert!(seen.iter().all(|s| *s), "every attribute is stated somewhere: {seen:?}");
    // A caption about another bird disagrees somewhere.
    let (_, agree) = parse_caption(&train.captions[0][0]).agreement(&Bird { body: (truth[0].body + 1) % 10, head: (truth[0].head + 1) % 10, belly: (truth[0].belly + 1) % 10, wing: (truth[0].wing + 1) % 10, bill: (truth[0].bill + 1) % 10, size: (truth[0].size + 1) % 3, long_bill: !truth[0].long_bill, ..truth[0] });
    assert_eq!(agree, 0);
}

/// Every built-in caption is one of the templates, and all 8 are used; a blend of two templates,
/// a slot holding a word of the wrong kind, a missing or an extra word are not.
#[test]
fn template_of_tells_a_sentence_from_a_blend() {
    let (train, _) = birds(200, 0, 0);
    let mut used = [0usize; 8];
    for c in train.captions.iter().flatten() {
        let t = template_of(c).unwrap_or_else(|| panic!("a built-in caption is a template: {c}"));
        used[t] += 1;
        assert_eq!(template_of(&c.to_uppercase()), Some(t), "case is ignored, as `words` does");
    }
    assert!(used.iter().all(|&n| n > 0), "every template is used: {used:?}");
    assert_eq!(template_of("a small red bird with a white belly sitting on a branch"), Some(1));
    assert_eq!(template_of("this bird has a red crown and a short black bill"), Some(0));
    for blend in [
        "this bird purple blue with a blue green and and blue bill",
        "a small bird with with a blue belly and a blue belly",
        "a red red bird with a white belly",
        "a small red bird with a long belly",
        "a small red bird with a white",
        "a small red bird with a white belly sitting on a",
        "",
    ] {
        assert_eq!(template_of(blend), None, "{blend}");
    }
}

/// The drawing shows the attributes: the head's centre has the head colour (within the jitter
/// and the eye's distance), and long bills cover more pixels of the bill colour than short ones.
#[test]
fn images_show_the_attributes() {
    let mut out = vec![0u8; BIRD_SHAPE.iter().product()];
    let (mut long, mut short) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let mut b = bird(Split::Train, i, 0);
        render_bird(&b, Split::Train, i, 0, &mut out);
        // The image holds pixels within 20 of the head colour in every channel.
        let near = |rgb: [f32; 3]| (0..64 * 64).filter(|&p| (0..3).all(|k| (out[k * 4096 + p] as f32 - rgb[k]).abs() <= 20.0)).count();
        assert!(near(COLOURS[b.head].1) >= 20, "bird {i}: head colour {} hardly visible", COLOURS[b.head].0);
        // The same bird with either bill length.
        for long_bill in [false, true] {
            b.long_bill = long_bill;
            let mut o = vec![0u8; out.len()];
            render_bird(&b, Split::Train, i, 0, &mut o);
            let px = (0..4096).filter(|&p| (0..3).all(|k| (o[k * 4096 + p] as f32 - COLOURS[b.bill].1[k]).abs() <= 20.0)).count();
            if long_bill { long.push(px) } else { short.push(px) }
        }
    }
    let (l, s): (usize, usize) = (long.iter().sum(), short.iter().sum());
    assert!(l > s + 60 * 8, "long bills show more of the bill colour: {l} vs {s}");
}

/// The body is the largest part, as a caption's "mostly {body}" says and as the class label (the
/// body colour) needs: in every bird whose body, wing, head, belly and bill have five different
/// colours (none brown on a branch), more pixels lie near the body colour than near any other part's. (A wing drawn over
/// the middle of the body once showed more than the body did, and no model learned the body
/// colour while wings, heads and bellies were read above chance.)
#[test]
fn the_body_is_the_largest_part() {
    let mut out = vec![0u8; BIRD_SHAPE.iter().product()];
    let mut checked = 0;
    for i in 0..400 {
        let b = bird(Split::Train, i, 0);
        let parts = [b.body, b.wing, b.head, b.belly, b.bill];
        // The branch is near brown: a perched bird's brown part would count it.
        let brown = COLOURS.iter().position(|c| c.0 == "brown").unwrap();
        if (1..5).any(|k| parts[..k].contains(&parts[k])) || (b.perched && parts.contains(&brown)) {
            continue;
        }
        render_bird(&b, Split::Train, i, 0, &mut out);
        // Within the jitter (±12) and rounding of a part's colour: blended edge pixels rarely
        // pass, as they would with a wider margin (grey is between many pairs).
        let near = |c: usize| (0..64 * 64).filter(|&p| (0..3).all(|k| (out[k * 4096 + p] as f32 - COLOURS[c].1[k]).abs() <= 13.0)).count();
        let body = near(b.body);
        for (part, &c) in ["wing", "head", "belly"].iter().zip(&parts[1..4]) {
            assert!(body > near(c), "bird {i}: body {} shows {body} pixels, {part} {} {}", COLOURS[b.body].0, COLOURS[c].0, near(c));
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} birds with five distinct part colours");
}

#[test]
fn vocabulary_encodes_and_decodes() {
    let v = Vocab::build(["A small red bird.", "a small blue bird", "small"], 2);
    assert_eq!(v.word(0), Some("<pad>"));
    assert_eq!((v.id("small"), v.id("red"), v.id("zebra")), (v.id("small"), UNK, UNK));
    assert!(v.id("small") > END && v.id("bird") > END && v.id("a") > END);
    let ids = v.encode("A small red bird");
    assert_eq!(ids.len(), MAX_TOKENS);
    assert_eq!(&ids[..5], &[v.id("a"), v.id("small"), UNK, v.id("bird"), END]);
    assert!(ids[5..].iter().all(|&i| i == PAD));
    assert_eq!(v.decode(&ids), "a small <unk> bird");
    let long = "bird ".repeat(40);
    let ids = v.encode(&long);
    assert_eq!((ids.len(), ids[MAX_TOKENS - 1]), (MAX_TOKENS, END), "cut to leave room for <end>");
    assert_eq!(Vocab::from_lines(&v.to_lines(), "vocab.txt").unwrap(), v);
    let e = Vocab::from_lines("a\nb\n", "vocab.txt").unwrap_err().to_string();
    assert!(e.contains("vocab.txt"), "{e}");
    assert_eq!(words("This bird's bill, short!"), ["this", "bird's", "bill", ",", "short", "!"]);
}

#[test]
fn caption_datasets_pair_every_caption_with_its_image() {
    let (train, _) = birds(6, 0, 1);
    let vocab = Arc::new(Vocab::build(train.captions.iter().flatten().map(String::as_str), 1));
    let ds = Dataset::from_captions(&train, vocab.clone()).unwrap();
    assert_eq!(ds.len(), 6 * CAPTIONS_PER_IMAGE);
    assert_eq!(ds.kinds(), vec![Modality::Image(BIRD_SHAPE), Modality::Text { len: MAX_TOKENS, vocab: vocab.len() }]);
    // Example 5·i + k is bird i with caption k; labels are the body colours.
    let b = ds.try_batch(&[2 * 5 + 3, 0, 4]).unwrap();
    assert_eq!(b[0].shape, [3, 3, 64, 64]);
    assert!(b[0].data.iter().all(|v| (-1.0..=1.0).contains(v)));
    let per: usize = BIRD_SHAPE.iter().product();
    let want: Vec<f32> = train.image(2).iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
    assert_eq!(&b[0].data[..per], &want[..]);
    assert_eq!(&b[0].data[per..2 * per], &b[0].data[2 * per..], "examples 0 and 4 are both bird 0");
    assert_eq!(b[1].shape, [3, MAX_TOKENS, vocab.len()]);
    assert!(b[1].data.chunks(vocab.len()).all(|row| row.iter().sum::<f32>() == 1.0), "one-hot rows");
    let caps = captions_of(&b[1], &vocab);
    assert_eq!(caps[0], words(&train.captions[2][3]).join(" "));
    assert_eq!(caps[2], words(&train.captions[0][4]).join(" "));
    assert_eq!(ds.batch_labels(&[13]).unwrap(), vec![train.birds.as_ref().unwrap()[2].body as u8]);
    let e = ds.try_batch(&[30]).unwrap_err().to_string();
    assert!(e.contains("birds/train") && e.contains("30"), "{e}");
    // take(n) keeps whole examples: 7 pairs need 2 images.
    let t = ds.take(7);
    assert_eq!((t.len(), t.modality_bytes(0).unwrap().len()), (7, 2 * per));
    let (x6, y6) = (t.try_batch(&[6]).unwrap(), ds.try_batch(&[6]).unwrap());
    assert!(x6.iter().zip(&y6).all(|(a, b)| a.data == b.data && a.shape == b.shape));
    // A caption typed by a user reads back (unknown words as <unk>).
    let oh = one_hot("a small red bird zzz", &vocab);
    assert_eq!(captions_of(&oh, &vocab)[0], "a small red bird <unk>");
    // Images with different numbers of captions are refused, naming the image.
    let mut bad = train.clone();
    bad.captions[4].pop();
    let e = Dataset::from_captions(&bad, vocab).unwrap_err().to_string();
    assert!(e.contains("image 4 has 4 captions"), "{e}");
}

/// A CUB folder with `train` images per class in two classes, one test class, `per` captions per
/// image; returns its root.
fn cub_folder(name: &str, per: usize) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("mmebm-cub-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut train_caps = String::new();
    for (class, n) in [("001.Albatross", 2), ("002.Auklet", 1)] {
        std::fs::create_dir_all(root.join("train").join(class)).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, (i * 90) as u8]));
            let ext = if i == 0 { "jpg" } else { "png" };
            img.save(root.join("train").join(class).join(format!("img{i}.{ext}"))).unwrap();
            for k in 0..per {
                train_caps.push_str(&format!("a {class} bird with a red crown number {k}\n"));
            }
        }
    }
    std::fs::create_dir_all(root.join("test/003.Blackbird")).unwrap();
    image::RgbImage::from_pixel(30, 50, image::Rgb([10, 200, 30])).save(root.join("test/003.Blackbird/a.png")).unwrap();
    std::fs::write(root.join("text_trainvalclasses.txt"), train_caps).unwrap();
    std::fs::write(root.join("text_testclasses.txt"), (0..per).map(|k| format!("a green bird {k}\n")).collect::<String>()).unwrap();
    root
}

#[test]
fn cub_loader_reads_the_layout() {
    let root = cub_folder("good", 2);
    let (train, test, vocab) = mmebm::data::cub::load_cub(&root).unwrap();
    assert_eq!((train.len(), test.len()), (3, 1));
    assert_eq!(train.shape, BIRD_SHAPE);
    assert_eq!(train.captions[2], ["a 002.Auklet bird with a red crown number 0", "a 002.Auklet bird with a red crown number 1"]);
    // Resized, not cropped: the test image is one green colour everywhere.
    assert!(test.image(0).chunks(4096).zip([10u8, 200, 30]).all(|(p, v)| p.iter().all(|&x| x.abs_diff(v) <= 1)));
    // Words seen 3+ times in the training captions (6 captions): "bird", "red", ...; not "0".
    assert!(vocab.id("crown") > 2 && vocab.id("001") > 2);
    assert_eq!(vocab.id("auklet"), mmebm::data::text::UNK, "seen twice only");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn cub_loader_names_the_broken_file() {
    let cases: [(&str, fn(&std::path::Path), &str); 4] = [
        ("nocaps", |r| std::fs::remove_file(r.join("text_testclasses.txt")).unwrap(), "text_testclasses.txt"),
        ("count", |r| std::fs::write(r.join("text_trainvalclasses.txt"), "one\ntwo\nthree\nfour\n").unwrap(), "4 captions for 3 images"),
        ("corrupt", |r| std::fs::write(r.join("train/002.Auklet/img0.jpg"), b"not a jpeg").unwrap(), "img0.jpg: cannot decode"),
        ("notrain", |r| std::fs::remove_dir_all(r.join("train")).unwrap(), "train"),
    ];
    for (name, breakit, want) in cases {
        let root = cub_folder(name, 2);
        breakit(&root);
        let e = mmebm::data::cub::load_cub(&root).unwrap_err().to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{name}: {e}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn captions_are_drawn_with_the_built_in_font() {
    use mmebm::data::font::{draw, glyph, wrap, ADVANCE};
    // Every character of the birds' captions and the special tokens has its own glyph.
    let (train, _) = birds(50, 0, 0);
    let unknown = glyph('?');
    for c in train.captions.iter().flatten().flat_map(|c| c.chars()).chain("<unk><end>|".chars()) {
        assert!(c == '?' || glyph(c) != unknown, "no glyph for {c:?}");
    }
    assert_eq!(glyph('a'), glyph('A'));
    assert_eq!(wrap("a small red bird", 9), vec!["a small", "red bird"]);
    assert_eq!(wrap("unbelievable x", 4), vec!["unbe", "x"]);
    assert!(wrap("   ", 5).is_empty());
    // "IT" at (1, 2) in a 20×10 image: the two glyphs' pixels, the second one advance to the right.
    let (w, h) = (20, 10);
    let mut img = vec![255u8; w * h * 3];
    draw(&mut img, w, (1, 2), "IT", [0, 0, 0]);
    let ink: usize = img.chunks(3).filter(|p| p[0] == 0).count();
    let bits = |c| glyph(c).iter().map(|r: &u8| r.count_ones() as usize).sum::<usize>();
    assert_eq!(ink, bits('I') + bits('T'));
    assert_eq!(&img[(2 * w + 1 + ADVANCE.0) * 3..(2 * w + 1 + ADVANCE.0) * 3 + 3], &[0, 0, 0], "T's top-left pixel");
    // Clipped at the border, never out of bounds.
    draw(&mut img, w, (18, 8), "WWW", [0, 0, 0]);
}

#[test]
fn attribute_counts_judge_every_stated_attribute_and_chance_matches_the_odds() {
    use mmebm::eval::metrics::AttributeCounts;
    // By hand: body red (right), belly white (wrong), size small (right); nothing else stated.
    let b = Bird { body: 0, wing: 1, head: 2, belly: 3, bill: 4, size: 0, long_bill: true, facing_left: false, perched: false, background: 0 };
    let said = [parse_caption("a small red bird with a white belly"), parse_caption("this bird this bird")];
    let c = AttributeCounts::of(&said, &[b, b]);
    assert_eq!((c.stated, c.agreeing), ([1, 0, 0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1, 0, 0]));
    assert_eq!((c.agreement(), c.agreement_of(3), c.agreement_of(1)), (Some(2.0 / 3.0), Some(0.0), None));
    assert_eq!(c.stated_per_caption(), 1.5);
    // Real captions agree with their own bird on everything they state; against the next
    // image's bird (eval's chance) each attribute agrees at its odds: colours 1/10, size 1/3,
    // bill length 1/2, "on a branch" as often as birds perch (2/3).
    let (_, test) = birds(400, 400, 5);
    let truth = test.birds.as_ref().unwrap();
    let said: Vec<_> = test.captions.iter().flatten().map(|c| parse_caption(c)).collect();
    let own: Vec<Bird> = (0..said.len()).map(|i| truth[i / CAPTIONS_PER_IMAGE]).collect();
    let next: Vec<Bird> = (0..said.len()).map(|i| truth[(i / CAPTIONS_PER_IMAGE + 1) % truth.len()]).collect();
    assert_eq!(AttributeCounts::of(&said, &own).agreement(), Some(1.0));
    let chance = AttributeCounts::of(&said, &next);
    let odds = [0.1, 0.1, 0.1, 0.1, 0.1, 1.0 / 3.0, 0.5, 2.0 / 3.0];
    for (k, p) in odds.iter().enumerate() {
        let n = chance.stated[k] as f64;
        let tol = 4.0 * (p * (1.0 - p) / n).sqrt();
        let got = chance.agreement_of(k).unwrap();
        assert!((got - p).abs() < tol, "attribute {k}: {got:.3} against odds {p:.3} ± {tol:.3} over {n} captions");
    }
}
