//! The built-in caption data: writes a grid of the first N training birds (one column) to a PNG
//! and prints their captions with how many stated attributes agree with the drawn bird.
//!     cargo run --release --example birds -- [N] [OUT.png]
use mmebm::data::birds::{birds_split, parse_caption, CAPTIONS_PER_IMAGE};
use mmebm::data::synthetic::Split;
use mmebm::data::text::Vocab;

fn main() -> mmebm::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let out = std::env::args().nth(2).unwrap_or_else(|| "birds.png".into());
    let data = birds_split(Split::Train, n, 0);
    let vocab = Vocab::build(data.captions.iter().flatten().map(String::as_str), 1);
    println!("{n} birds, {} words in their captions' vocabulary", vocab.len());
    // Example i·5 + k is bird i with its caption k: the first caption of each bird.
    let pairs = mmebm::data::Dataset::from_captions(&data, std::sync::Arc::new(vocab))?;
    let idx: Vec<usize> = (0..n).map(|i| i * CAPTIONS_PER_IMAGE).collect();
    let batch = pairs.try_batch(&idx)?;
    mmebm::data::save_grid(std::path::Path::new(&out), &batch[..1])?;
    for (i, caps) in data.captions.iter().enumerate() {
        let b = data.birds.as_ref().map(|b| b[i]);
        for c in caps {
            let agree = b.map(|b| parse_caption(c).agreement(&b));
            println!("{i}: {c}   (stated, agreeing): {agree:?}");
        }
    }
    println!("wrote {out}");
    Ok(())
}
