//! End-to-end benchmarks on loopback with a real Prosody (issue 7): start-up
//! to online, publish-to-receive latency, a 10,000-share list arriving, the
//! memory of an idle daemon holding 500,000 catalog shares, hashing against
//! `sha1sum`, and a 1 GiB transfer against librqbit alone (medians of three
//! each, interleaved) and `sha1sum`. Prints one line per figure with its
//! target; run with `scripts/bench.sh`, which also writes BENCHMARKS.md
//! (`cargo bench --bench system -- memory` or `-- transfer` runs one part).
//! Figures, not pass/fail tests: machines are noisy, so compare the ratios.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitween::events::{Event, EventBus};
use bitween::service::Service;
use bitween::shares::{InfoHash, ResourceShares, Share};
use common::{Peer, Prosody};

fn row(figure: &str, target: &str, value: String, ok: Option<bool>) {
    let verdict = match ok {
        Some(true) => "pass",
        Some(false) => "MISS",
        None => "-",
    };
    println!("| {figure} | {target} | {value} | {verdict} |");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn random_file(path: &Path, bytes: u64) {
    use rand::RngCore;
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let mut rng = rand::rng();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

fn sha1sum(path: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new("sha1sum")
        .arg(path)
        .output()
        .expect("sha1sum runs");
    assert!(out.status.success());
    t.elapsed()
}

async fn start(
    server: &Prosody,
    user: &str,
    dir: &Path,
) -> (Service, tokio::sync::broadcast::Receiver<Event>) {
    let bus = EventBus::new();
    let rx = bus.subscribe();
    let svc = Service::start_with(common::service_config(server, user, dir, None), bus)
        .await
        .unwrap();
    (svc, rx)
}

async fn wait(rx: &mut tokio::sync::broadcast::Receiver<Event>, pred: impl Fn(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return,
            Ok(Ok(Event::DownloadFailed { reason, .. })) => panic!("download failed: {reason}"),
            Ok(_) => {}
            Err(_) => panic!("benchmark timed out"),
        }
    }
}

fn shares(n: u32, tag: u32) -> Vec<Share> {
    (0..n)
        .map(|i| {
            Share::from_wire(
                &format!("{tag:08x}{i:032x}"),
                &format!("track {i} of the collection {tag}.flac"),
                "4000000",
            )
            .unwrap()
        })
        .collect()
}

/// Start-up: `bitweend` process start until its API reports it online.
fn startup(server: &Prosody, dir: &Path) -> Duration {
    let data = dir.join("startup");
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitweend"))
        .args([
            "--jid",
            "carol@localhost",
            "--server",
            &server.server(),
            "--insecure-plaintext",
        ])
        .args([
            "--no-public-ip",
            "--no-upnp",
            "--no-natpmp",
            "--address",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--download-dir")
        .arg(dir.join("startup-dl"))
        .env("BITWEEN_PASSWORD", common::PASSWORD)
        .env("RUST_LOG", "bitween=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The daemon logs "online" to stdout through tracing; read until then.
    use std::io::BufRead;
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut online = false;
    for line in out.lines() {
        let line = line.unwrap();
        if line.contains("bitween::xmpp::session") && line.contains(" online ") {
            online = true;
            break;
        }
    }
    let elapsed = t.elapsed();
    assert!(online, "bitweend ended before it was online");
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

#[tokio::main]
async fn main() {
    if cfg!(debug_assertions) {
        println!("unoptimized build: skipped; run scripts/bench.sh for figures");
        return;
    }
    let gib: u64 = std::env::var("BITWEEN_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let tmp =
        tempfile::tempdir_in(std::env::var("BITWEEN_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    println!("| figure | target | value | |");
    println!("| --- | --- | --- | --- |");
    // `cargo bench --bench system -- memory` (or `-- transfer`): only the
    // memory figure (or hashing and transfer).
    if std::env::args().any(|a| a == "memory") {
        memory_row(tmp.path()).await;
        return;
    }
    let server = Prosody::start(&["alice", "bob", "carol"], &[("alice", "bob")]);
    if std::env::args().any(|a| a == "transfer") {
        transfer(&server, tmp.path(), gib).await;
        return;
    }

    // 6. Start-up to online (median of 5).
    let mut starts: Vec<Duration> = (0..5).map(|_| startup(&server, tmp.path())).collect();
    starts.sort();
    let s = starts[2];
    row(
        "bitweend start to online (median of 5)",
        "< 500 ms",
        ms(s),
        Some(s < Duration::from_millis(500)),
    );

    // 2b. Publish-to-receive on the local server (p50 of 20 changes).
    let alice_peer = Peer::login(&server, "alice", "lat").await;
    let mut bob_peer = Peer::login(&server, "bob", "lat").await;
    let mut lat = Vec::new();
    for i in 0..20u32 {
        let list = shares(3, 1_000 + i);
        lat.push(publish_until_seen(&alice_peer, &mut bob_peer, &list, "the change").await);
    }
    lat.sort();
    let p50 = lat[lat.len() / 2];
    row(
        "publish to receive, p50 of 20",
        "< 100 ms",
        ms(p50),
        Some(p50 < Duration::from_millis(100)),
    );

    // 3. 10,000 shares (with chunks) until the contact has all of them.
    let big = shares(10_000, 7);
    let d = publish_until_seen(&alice_peer, &mut bob_peer, &big, "10,000 shares").await;
    row(
        "10,000 shares at the contact after publish",
        "< 2 s",
        ms(d),
        Some(d < Duration::from_secs(2)),
    );
    alice_peer.xmpp.shutdown().await;
    bob_peer.xmpp.shutdown().await;

    // 5. Memory of an idle daemon holding a large catalog.
    memory_row(tmp.path()).await;

    // 2a and 1. Hashing and transfer of a large random file.
    transfer(&server, tmp.path(), gib).await;
}

/// alice (resource "lat") publishes `list`; the time until bob's catalog
/// holds exactly that list.
async fn publish_until_seen(alice: &Peer, bob: &mut Peer, list: &[Share], what: &str) -> Duration {
    let t = Instant::now();
    alice
        .xmpp
        .set_local(ResourceShares {
            shares: list.to_vec(),
            addresses: vec!["127.0.0.1:1".parse().unwrap()],
            more: None,
        })
        .unwrap();
    bob.wait_catalog(what, |c| {
        c.resource("alice@localhost", "lat")
            .is_some_and(|r| r.shares == list)
    })
    .await;
    t.elapsed()
}

/// Hashing a large random file in place against `sha1sum`, then its
/// download by Bitween and by librqbit alone: three of each, interleaved
/// (Bitween, librqbit, Bitween, ...) so that a slow spell of the machine
/// does not fall on one side only, each after `sync` so that one
/// transfer's writeback does not slow the next. The medians are compared.
async fn transfer(server: &Prosody, dir: &Path, gib: u64) {
    let file_dir = dir.join("files");
    std::fs::create_dir_all(&file_dir).unwrap();
    let file = file_dir.join("big.bin");
    random_file(&file, gib);
    let _ = sha1sum(&file); // warm the page cache
    let floor = sha1sum(&file);
    let (alice, _arx) = start(server, "alice", &dir.join("alice")).await;
    let t = Instant::now();
    let share = alice.engine.share(&file).await.unwrap();
    let hashing = t.elapsed();
    row(
        &format!("hash {} MiB in place (sha1sum: {})", gib >> 20, ms(floor)),
        "<= sha1sum",
        format!(
            "{} ({:.2}x sha1sum)",
            ms(hashing),
            hashing.as_secs_f64() / floor.as_secs_f64()
        ),
        Some(hashing <= floor),
    );
    // librqbit alone seeds a copy: opening the file to seed it touches it,
    // and alice would then withdraw her share of the original.
    let copy_dir = dir.join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("big.bin");
    std::fs::copy(&file, &copy).unwrap();
    let (mut apps, mut alones) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let bob_dir = dir.join(format!("bob{round}"));
        apps.push(bitween_download(server, &bob_dir, share.hash).await);
        std::fs::remove_dir_all(&bob_dir).unwrap();
        let rq_dir = dir.join(format!("rq{round}"));
        alones.push(librqbit_alone(&copy, &rq_dir).await);
        std::fs::remove_dir_all(&rq_dir).unwrap();
    }
    alice.shutdown().await;
    let runs = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.1}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let (app, engine_alone) = (median(&apps), median(&alones));
    let ratio = app.as_secs_f64() / engine_alone.as_secs_f64();
    row(
        &format!("download {} MiB: librqbit alone, median of 3", gib >> 20),
        "-",
        format!(
            "{:.0} MiB/s ({}; runs {} s)",
            mibs(gib, engine_alone),
            ms(engine_alone),
            runs(&alones)
        ),
        None,
    );
    row(
        &format!("download {} MiB: Bitween, median of 3", gib >> 20),
        "<= 1.15x librqbit alone",
        format!(
            "{:.0} MiB/s ({}, {ratio:.2}x; runs {} s)",
            mibs(gib, app),
            ms(app),
            runs(&apps)
        ),
        Some(ratio <= 1.15),
    );
    row(
        &format!("sha1sum {} MiB (verification floor)", gib >> 20),
        "-",
        format!("{:.0} MiB/s", mibs(gib, floor)),
        None,
    );
}

/// Flushes dirty pages, so that a transfer does not pay for the last one's.
fn sync() {
    let _ = Command::new("sync").status();
}

/// A fresh Bitween (bob) downloads `hash` from alice: the time from asking
/// until the download is reported finished.
async fn bitween_download(server: &Prosody, dir: &Path, hash: InfoHash) -> Duration {
    let (bob, mut brx) = start(server, "bob", dir).await;
    let catalog = bob.catalog.clone();
    while !catalog.sources(&hash).iter().any(|s| s.online) {
        let _ = brx.recv().await;
    }
    sync();
    let t = Instant::now();
    bob.engine.download(hash, None).await.unwrap();
    wait(
        &mut brx,
        |e| matches!(e, Event::DownloadFinished { hash: h, .. } if *h == hash),
    )
    .await;
    let d = t.elapsed();
    bob.shutdown().await;
    d
}

async fn memory_row(dir: &Path) {
    let (peak, now) = memory(dir).await;
    row(
        "bitweend idle, 100 own shares, 500,000 shares from 50 contacts: peak RSS",
        "< 80 MB",
        format!("{peak:.0} MiB (now {now:.0} MiB)"),
        Some(peak * 1.048_576 < 80.0),
    );
}

/// The same transfer by two librqbit sessions with our session settings
/// and nothing else: the engine's own speed.
async fn librqbit_alone(file: &Path, dir: &Path) -> Duration {
    use librqbit::{
        AddTorrent, AddTorrentOptions, CreateTorrentOptions, ListenerMode, ListenerOptions,
        Session, SessionOptions,
    };
    let opts = |port: u16| SessionOptions {
        dht: None,
        disable_trackers: true,
        disable_local_service_discovery: true,
        listen: Some(ListenerOptions {
            mode: ListenerMode::TcpAndUtp,
            listen_addr: (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let seeder: Arc<Session> = Session::new_with_opts(dir.join("seed"), opts(0))
        .await
        .unwrap();
    let leecher: Arc<Session> = Session::new_with_opts(dir.join("leech"), opts(0))
        .await
        .unwrap();
    let (created, seeding) = seeder
        .create_and_serve_torrent(
            file,
            CreateTorrentOptions {
                name: None,
                trackers: vec![],
                piece_length: None,
            },
        )
        .await
        .unwrap();
    // Like the app's share(), which returns once its check is done.
    seeding.wait_until_initialized().await.unwrap();
    let port = seeder.listen_addr().unwrap().port();
    // By magnet, like the app: the metadata comes from the peer too.
    let magnet = format!("magnet:?xt=urn:btih:{}", created.info_hash().as_string());
    sync();
    let t = Instant::now();
    let handle = leecher
        .add_torrent(
            AddTorrent::from_url(magnet),
            Some(AddTorrentOptions {
                initial_peers: Some(vec![format!("127.0.0.1:{port}").parse().unwrap()]),
                output_folder: Some(dir.join("out").to_string_lossy().into_owned()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    handle.wait_until_completed().await.unwrap();
    let d = t.elapsed();
    seeder.stop().await;
    leecher.stop().await;
    d
}

/// Memory: a `bitweend` process sharing 100 files and holding a catalog of
/// 500,000 shares (50 contacts x 10,000, the lists travelling in chunks),
/// idle. Returns its peak and current RSS in MiB.
async fn memory(dir: &Path) -> (f64, f64) {
    let users: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let mut all: Vec<&str> = users.iter().map(String::as_str).collect();
    all.push("dave");
    let pairs: Vec<(&str, &str)> = users.iter().map(|u| ("dave", u.as_str())).collect();
    let server = Prosody::start(&all, &pairs);
    let files = dir.join("own");
    std::fs::create_dir_all(&files).unwrap();
    let mut args = vec![];
    for i in 0..100 {
        let f = files.join(format!("file{i}.txt"));
        std::fs::write(&f, format!("own file {i}\n").repeat(100)).unwrap();
        args.push("--share".to_string());
        args.push(f.display().to_string());
    }
    let data = dir.join("dave");
    // BITWEEN_BENCH_WRAP="heaptrack -o /tmp/dave" runs the daemon under a
    // profiler (its RSS figure is then the profiler's, not the daemon's).
    let wrap: Vec<String> = std::env::var("BITWEEN_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut command = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(env!("CARGO_BIN_EXE_bitweend"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_bitweend")),
    };
    let mut child = command
        .args([
            "--jid",
            "dave@localhost",
            "--server",
            &server.server(),
            "--insecure-plaintext",
        ])
        .args([
            "--no-public-ip",
            "--no-upnp",
            "--no-natpmp",
            "--address",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--download-dir")
        .arg(dir.join("dave-dl"))
        .args(&args)
        .env("BITWEEN_PASSWORD", common::PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peers = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let p = Peer::login(&server, u, "pc").await;
        p.xmpp
            .set_local(ResourceShares {
                shares: shares(10_000, 50_000 + i as u32),
                addresses: vec!["127.0.0.1:1".parse().unwrap()],
                more: None,
            })
            .unwrap();
        peers.push(p);
    }
    // Wait until dave's catalog holds all of it (asking its API).
    let patience = if wrap.is_empty() { 300 } else { 3600 };
    let deadline = Instant::now() + Duration::from_secs(patience);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_bitweenc"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--json", "status"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let own = Command::new(env!("CARGO_BIN_EXE_bitweenc"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--json", "shares"])
            .output()
            .unwrap();
        let own: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap_or_default();
        if v["catalog"]["shares"] == 500_000 && own.as_array().is_some_and(|a| a.len() == 100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dave's catalog never filled: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // idle
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (peak, now) = (kib("VmHWM:") / 1024.0, kib("VmRSS:") / 1024.0);
    // What the resident memory is now: the heap and stacks (anonymous) or
    // the program's own code and data (file-backed).
    println!(
        "idle RSS {now:.0} MiB: anonymous {:.0} MiB, file-backed {:.0} MiB",
        kib("RssAnon:") / 1024.0,
        kib("RssFile:") / 1024.0
    );
    if wrap.is_empty() {
        let _ = child.kill();
    } else {
        // A profiler writes its report when the daemon ends cleanly: Ctrl-C
        // to the daemon (the wrapper's child, or the wrapper itself when it
        // runs the daemon in its own process, as valgrind does).
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        let target = children
            .split_whitespace()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("bitweend"))
            })
            .map_or(child.id().to_string(), str::to_string);
        let _ = Command::new("kill").args(["-INT", &target]).status();
    }
    let _ = child.wait();
    for p in &peers {
        p.xmpp.shutdown().await;
    }
    (peak, now)
}
