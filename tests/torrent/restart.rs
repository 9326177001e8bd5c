//! A restart costs metadata, not bytes (issue 17, item 1): a share whose
//! files kept their size, modification time and identity seeds again
//! without being read (it stays idle until a peer wants it: `idle.rs`); one whose
//! modification time changed is read in full, and stays shared when its
//! content did not change; `bitweenc verify` reads every piece on demand and
//! catches a change that kept the modification time. The bytes bitweend
//! read are its `rchar` in `/proc/<pid>/io`.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bitween_testkit::bitweend::Daemon;
use bitween_testkit::Prosody;

const BIG: usize = 96 * 1024 * 1024;
const SMALL: usize = 16 * 1024 * 1024;

/// Bytes the process `pid` has read so far (files and sockets).
pub(crate) fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/<pid>/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("an rchar line")
}

/// Waits (up to two minutes) until every hash in `hashes` is seeding.
pub(crate) fn wait_seeding(daemon: &Daemon, hashes: &[&str]) {
    wait_seeding_within(daemon, hashes, Duration::from_secs(120))
}

/// Waits up to `limit` until every hash in `hashes` is seeding (a share,
/// or a download that finished).
pub(crate) fn wait_seeding_within(daemon: &Daemon, hashes: &[&str], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let transfers = daemon.json(&["transfers"]);
        let seeding = |h: &&str| {
            transfers
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["hash"] == *h && t["state"] == "seeding")
        };
        if hashes.iter().all(seeding) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {hashes:?} seeding: {transfers:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hashes `daemon` shares.
pub(crate) fn shared(daemon: &Daemon) -> Vec<String> {
    daemon
        .json(&["shares"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hash"].as_str().unwrap().to_string())
        .collect()
}

fn set_mtime(path: &Path, to: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(to).unwrap();
}

#[test]
fn an_unchanged_share_is_not_read_again_and_verify_reads_it_all() {
    let server = Prosody::start(&["alice"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let big = tmp.path().join("library.bin");
    let small = tmp.path().join("touched.bin");
    let alice = Daemon::start(&server, "alice", &dir);
    let (_, big_hash) = alice.share_random_file(&big, BIG);
    let (_, small_hash) = alice.share_random_file(&small, SMALL);
    assert_eq!(alice.terminate().code(), Some(0));

    // While the app is closed, the small file gets a new modification time
    // (its content stays).
    set_mtime(&small, SystemTime::now() + Duration::from_secs(5));
    let alice = Daemon::start(&server, "alice", &dir);
    wait_seeding(&alice, &[&big_hash, &small_hash]);
    let read = rchar(alice.child.id());
    eprintln!("the restart read {read} bytes ({SMALL} touched, {BIG} unchanged)");
    assert!(
        read >= SMALL as u64,
        "the touched share is read in full: {read} bytes read"
    );
    assert!(
        read < (SMALL + BIG / 50) as u64,
        "the unchanged {BIG}-byte share is not read again (it stays idle): {read} bytes read in all"
    );
    let mut both = shared(&alice);
    both.sort();
    let mut wanted = vec![big_hash.clone(), small_hash.clone()];
    wanted.sort();
    assert_eq!(both, wanted, "both stay shared");

    // verify reads every piece.
    let out = alice.cli(&["verify", &big_hash]);
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact   library.bin"));
    let after = rchar(alice.child.id());
    assert!(
        after - read >= BIG as u64,
        "verify read {} bytes of {BIG}",
        after - read
    );

    // A byte changed in place with the modification time put back: only
    // verify sees it, and the share is withdrawn.
    let mtime = std::fs::metadata(&big).unwrap().modified().unwrap();
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&big)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 50 * 1024 * 1024).unwrap();
    f.write_all_at(&[!byte[0]], 50 * 1024 * 1024).unwrap();
    drop(f);
    set_mtime(&big, mtime);
    let out = alice.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "a changed share fails verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CHANGED  library.bin"), "{text}");
    assert!(text.contains("intact   touched.bin"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 shares changed on disk"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        shared(&alice),
        vec![small_hash],
        "the changed share is gone"
    );
    alice.terminate();
}

/// A fast, reproducible filler for benchmark files (their content does not
/// matter, only that pieces differ).
pub(crate) fn fill(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut state = seed | 1;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len());
        out.write_all(&block[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}

/// Starts bitweend on `dir` and times it until every share in `hashes`
/// seeds; returns that time and the bytes it read meanwhile.
fn timed_restart(server: &Prosody, dir: &Path, hashes: &[&str]) -> (Daemon, Duration, u64) {
    let started = Instant::now();
    let daemon = Daemon::start(server, "alice", dir);
    wait_seeding(&daemon, hashes);
    let took = started.elapsed();
    let read = rchar(daemon.child.id());
    (daemon, took, read)
}

/// Issue 17's restart benchmark: 200 files of 41 MiB (8.0 GiB) in four
/// shared folders; bitweend restarted unchanged, then with one file touched.
/// Prints rows of BENCHMARKS.md's table; asserts only that it ran.
/// `cargo test --release --test torrent -- --ignored --nocapture restart::bench_restart`
/// (`BITWEEN_RESTART_BENCH_MIB=41` sets each file's size in MiB).
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_restart() {
    let mib: usize = std::env::var("BITWEEN_RESTART_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    let (folders, per_folder) = (4, 50);
    let server = Prosody::start(&["alice"], &[]);
    let tmp =
        tempfile::tempdir_in(std::env::var("BITWEEN_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let dir = tmp.path().join("alice");
    let library = tmp.path().join("library");
    for f in 0..folders {
        let folder = library.join(format!("album {f}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_folder {
            fill(
                &folder.join(format!("track {i:02}.flac")),
                mib << 20,
                (f * per_folder + i + 1) as u64,
            );
        }
    }
    let total = (folders * per_folder * mib) as u64 * 1024 * 1024;
    let alice = Daemon::start(&server, "alice", &dir);
    let hashes: Vec<String> = (0..folders)
        .map(|f| {
            alice.json(&[
                "share",
                library.join(format!("album {f}")).to_str().unwrap(),
            ])[0]["hash"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
    assert_eq!(alice.terminate().code(), Some(0));
    let gib = total as f64 / (1u64 << 30) as f64;
    let what = format!(
        "{gib:.1} GiB in {} files, {folders} shared folders",
        folders * per_folder
    );

    let (alice, took, read) = timed_restart(&server, &dir, &hashes);
    assert_eq!(alice.terminate().code(), Some(0));
    let pct = read as f64 * 100.0 / total as f64;
    println!(
        "| restart, {what}, unchanged: until every share seeds | < 2 s | {} ms | {} |",
        took.as_millis(),
        if took < Duration::from_secs(2) {
            "pass"
        } else {
            "FAIL"
        }
    );
    println!(
        "| restart, {what}, unchanged: bytes bitweend read (rchar) | < 1 % of the shared bytes | {:.1} MiB ({pct:.2} %) | {} |",
        read as f64 / 1048576.0,
        if pct < 1.0 { "pass" } else { "FAIL" }
    );

    let touched = library.join("album 0/track 00.flac");
    set_mtime(&touched, SystemTime::now() + Duration::from_secs(5));
    let (alice, took, read) = timed_restart(&server, &dir, &hashes);
    assert_eq!(alice.terminate().code(), Some(0));
    let folder = (per_folder * mib) as f64;
    println!(
        "| restart, {what}, one file touched (its folder, {folder:.0} MiB, is read again): until every share seeds | - | {} ms | - |",
        took.as_millis(),
    );
    println!(
        "| restart, {what}, one file touched: bytes bitweend read (rchar) | about its folder's {folder:.0} MiB | {:.1} MiB | - |",
        read as f64 / 1048576.0,
    );
}
