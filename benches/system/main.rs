//! End-to-end benchmarks on loopback with a real Prosody (issues 7 and 13):
//! start-up to online, publish-to-receive latency, a 10,000-share list
//! arriving, the memory of an idle daemon holding 500,000 catalog shares
//! and of a daemon under a hostile contact, hashing against `sha1sum`, and
//! a 1 GiB transfer against librqbit alone, and 10,000 small files shared
//! with the CLI. Prints one table row per figure
//! with its target; `scripts/bench.sh` writes the rows into BENCHMARKS.md,
//! and `docs/benchmarks.md` says how each figure is measured. One part
//! alone: `cargo bench --bench system -- startup` (or `latency`, `memory`,
//! `hostile`, `transfer`, `bulk`).
//!
//! `cargo test --all-targets` builds and runs benchmarks unoptimized: then
//! every part runs at small sizes, to check that it still works, and its
//! rows say "smoke run" instead of a verdict (they are not figures).

mod bulk;
mod daemon;
mod hostile;
mod latency;
mod memory;
mod transfer;

use std::time::Duration;

use bitween::shares::chunks;
use bitween_testkit::Prosody;

use bulk::bulk_rows;
use hostile::hostile_row;
use latency::{latency_rows, startup_row};
use memory::memory_row;
use transfer::transfer_rows;

/// An unoptimized build: small sizes, no verdicts.
const SMOKE: bool = cfg!(debug_assertions);

/// How much each part does.
pub struct Sizes {
    pub startups: usize,
    pub latency_runs: usize,
    pub big_list: u32,
    pub contacts: u32,
    pub per_contact: u32,
    pub hostile_lists: u32,
    pub hostile_chunks: u16,
    pub bytes: u64,
    pub hash_runs: usize,
    pub transfer_rounds: usize,
    pub bulk_files: usize,
    pub bulk_per_call: usize,
}

impl Sizes {
    fn new() -> Sizes {
        let bytes = std::env::var("BITWEEN_BENCH_BYTES")
            .ok()
            .and_then(|v| v.parse().ok());
        // Fewer (or more) small files in the `bulk` part.
        let bulk_files = std::env::var("BITWEEN_BENCH_BULK_FILES")
            .ok()
            .and_then(|v| v.parse().ok());
        if SMOKE {
            Sizes {
                startups: 3,
                latency_runs: 3,
                big_list: 1_000,
                contacts: 3,
                per_contact: 200,
                hostile_lists: 2,
                hostile_chunks: 3,
                bytes: bytes.unwrap_or(4 << 20),
                hash_runs: 3,
                transfer_rounds: 3,
                bulk_files: bulk_files.unwrap_or(400),
                bulk_per_call: 100,
            }
        } else {
            Sizes {
                startups: 5,
                latency_runs: 20,
                big_list: 10_000,
                contacts: 50,
                per_contact: 10_000,
                hostile_lists: std::env::var("BITWEEN_BENCH_HOSTILE_LISTS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10),
                hostile_chunks: chunks::MAX_CHUNKS,
                bytes: bytes.unwrap_or(1 << 30),
                hash_runs: 3,
                transfer_rounds: 5,
                bulk_files: bulk_files.unwrap_or(10_000),
                bulk_per_call: 500,
            }
        }
    }
}

/// Peak RSS a daemon under a hostile contact may reach, in MB: room for
/// the daemon, one list of the most shares a resource may hold, and the
/// next one being read; a daemon that keeps every list crosses it within a
/// few lists.
const HOSTILE_BOUND_MB: f64 = 120.0;

fn row(figure: &str, target: &str, value: String, ok: Option<bool>) {
    let verdict = match ok {
        _ if SMOKE => "smoke run",
        Some(true) => "pass",
        Some(false) => "MISS",
        None => "-",
    };
    println!("| {figure} | {target} | {value} | {verdict} |");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// `min–max` of `v`, each written by `unit`.
fn spread(v: &[Duration], unit: fn(Duration) -> String) -> String {
    let min = v.iter().min().expect("runs");
    let max = v.iter().max().expect("runs");
    format!("{}–{}", unit(*min), unit(*max))
}

/// `n` with a comma between thousands.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    // The figures go to stdout: only our own warnings go with them.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "bitween=warn");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run());
}

async fn run() {
    // Two rustls providers are compiled in (tokio-xmpp's and reqwest's).
    let _ = tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let sizes = Sizes::new();
    let tmp =
        tempfile::tempdir_in(std::env::var("BITWEEN_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let http = reqwest::Client::new();
    if SMOKE {
        println!("unoptimized build: every part at small sizes, to check that it runs (not figures); `cargo bench --bench system` measures");
    }
    println!("| figure | target | value | |");
    println!("| --- | --- | --- | --- |");
    if wanted("startup") || wanted("latency") {
        let server = Prosody::start(&["alice", "bob", "carol"], &[("alice", "bob")]);
        if wanted("startup") {
            startup_row(&server, &http, tmp.path(), sizes.startups).await;
        }
        if wanted("latency") {
            latency_rows(&server, &sizes).await;
        }
    }
    if wanted("memory") {
        memory_row(&http, tmp.path(), &sizes).await;
    }
    if wanted("memory") || wanted("hostile") {
        hostile_row(&http, tmp.path(), &sizes).await;
    }
    if wanted("bulk") {
        let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
        bulk_rows(&server, &http, tmp.path(), &sizes).await;
    }
    if wanted("transfer") {
        let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
        transfer_rows(&server, tmp.path(), &sizes).await;
    }
}
