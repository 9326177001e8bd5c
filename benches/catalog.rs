//! Catalog benchmarks (issue 7, items 3 and 4): parsing a 10,000-share
//! payload, and search / replace on a catalog of 500 contacts x 1,000
//! shares. Prints one line per figure with its target; run with
//! `cargo bench --bench catalog`. Figures, not pass/fail tests: machines
//! are noisy, so the numbers are medians over many runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitween::shares::{
    parse_user_shares, to_element, Catalog, InfoHash, ResourceShares, Share, ShareName, UserShares,
};

fn item(resource: &str, n: usize, seed: u32) -> UserShares {
    let shares = (0..n)
        .map(|i| {
            let mut h = [0u8; 20];
            h[..4].copy_from_slice(&seed.to_be_bytes());
            h[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            Share {
                hash: InfoHash(h),
                name: ShareName::new(&format!("Holiday video {seed}-{i} in Lisbon.mkv")).unwrap(),
                size: 1_000_000 + i as u64,
            }
        })
        .collect();
    let mut u = UserShares::default();
    u.resources.insert(
        resource.into(),
        ResourceShares {
            shares,
            addresses: vec![
                "203.0.113.7:6881".parse().unwrap(),
                "[2001:db8::1]:6881".parse().unwrap(),
            ],
            more: None,
        },
    );
    u
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(figure: &str, target: &str, value: Duration, ok: bool) {
    println!(
        "{figure:<48} target {target:<10} median {:>9.3} ms  {}",
        value.as_secs_f64() * 1000.0,
        if cfg!(debug_assertions) {
            "(smoke run, not a figure)"
        } else if target == "(none)" {
            "(for the record)"
        } else if ok {
            "PASS"
        } else {
            "MISS"
        }
    );
}

fn main() {
    // `cargo test --all-targets` runs this unoptimized: then only check that
    // it works on small sizes; the figures come from `cargo bench`.
    let scale = if cfg!(debug_assertions) {
        println!("unoptimized build: a smoke run on small sizes; run `cargo bench --bench catalog` for figures");
        100
    } else {
        1
    };
    // Parsing a 10,000-share payload (already XML, as received).
    let big = to_element(&item("laptop", 10_000 / scale, 1));
    let samples: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            let p = parse_user_shares(black_box(&big), "bench@example.org").unwrap();
            black_box(p);
            t.elapsed()
        })
        .collect();
    let m = median(samples);
    report(
        "parse a 10,000-share payload",
        "< 20 ms",
        m,
        m < Duration::from_millis(20),
    );

    // A catalog of 500 contacts x 1,000 shares.
    let (catalog, writer) = Catalog::new();
    for c in 0..500u32 {
        writer.replace(
            &format!("contact{c}@example.org"),
            item("pc", 1_000 / scale, c),
        );
    }
    let queries = [
        "lisbon",
        "video 42-",
        "nothing matches this",
        "HOLIDAY VIDEO 499-999",
    ];
    let samples: Vec<Duration> = (0..40)
        .map(|i| {
            let t = Instant::now();
            black_box(catalog.search_first(black_box(queries[i % queries.len()]), 1_000));
            t.elapsed()
        })
        .collect();
    let m = median(samples);
    report(
        "search 500 x 1,000 (first 1,000 hits)",
        "< 5 ms",
        m,
        m < Duration::from_millis(5),
    );
    // For the record: a query matching all 500,000 names, every hit built.
    // Not a target: no screen shows that many.
    let samples: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            black_box(catalog.search(black_box("lisbon")));
            t.elapsed()
        })
        .collect();
    report(
        "search returning all 500,000 hits",
        "(none)",
        median(samples),
        true,
    );

    let samples: Vec<Duration> = (0..40)
        .map(|i| {
            let replacement = item("pc", 1_000 / scale, 10_000 + i);
            let t = Instant::now();
            writer.replace("contact250@example.org", black_box(replacement));
            t.elapsed()
        })
        .collect();
    let m = median(samples);
    report(
        "replace one contact's entry (1,000 shares)",
        "< 1 ms",
        m,
        m < Duration::from_millis(1),
    );
}
