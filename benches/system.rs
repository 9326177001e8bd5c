//! End-to-end benchmarks on loopback with a real Prosody (issues 7 and 13):
//! start-up to online, publish-to-receive latency, a 10,000-share list
//! arriving, the memory of an idle daemon holding 500,000 catalog shares
//! and of a daemon under a hostile contact, hashing against `sha1sum`, and
//! a 1 GiB transfer against librqbit alone. Prints one table row per figure
//! with its target; `scripts/bench.sh` writes the rows into BENCHMARKS.md,
//! and `docs/benchmarks.md` says how each figure is measured. One part
//! alone: `cargo bench --bench system -- startup` (or `latency`, `memory`,
//! `hostile`, `transfer`).
//!
//! `cargo test --all-targets` builds and runs benchmarks unoptimized: then
//! every part runs at small sizes, to check that it still works, and its
//! rows say "smoke run" instead of a verdict (they are not figures).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitween::events::{Event, EventBus};
use bitween::service::Service;
use bitween::shares::chunks::{self, More};
use bitween::shares::{to_element, InfoHash, ResourceShares, Share, UserShares};
use bitween::torrent::{base_session_options, EngineConfig};
use common::{Peer, Prosody, DOMAIN};
use minidom::Element;
use serde_json::{json, Value};

/// An unoptimized build: small sizes, no verdicts.
const SMOKE: bool = cfg!(debug_assertions);

/// How much each part does.
struct Sizes {
    startups: usize,
    latency_runs: usize,
    big_list: u32,
    contacts: u32,
    per_contact: u32,
    hostile_lists: u32,
    hostile_chunks: u16,
    bytes: u64,
    hash_runs: usize,
    transfer_rounds: usize,
}

impl Sizes {
    fn new() -> Sizes {
        let bytes = std::env::var("BITWEEN_BENCH_BYTES")
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

/// Flushes dirty pages, so that a transfer does not pay for the last one's.
fn sync() {
    let _ = Command::new("sync").status();
}

/// A field of `/proc/<pid>/status` in MiB (`VmHWM:`, `VmRSS:`, ...).
fn proc_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
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

/// `bitweend` for `user`, loopback only, with its data in `data`: the
/// command, ready for more arguments. `wrap` runs it under another program
/// (a profiler).
fn bitweend(server: &Prosody, user: &str, data: &Path, wrap: &[String]) -> Command {
    let mut command = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(env!("CARGO_BIN_EXE_bitweend"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_bitweend")),
    };
    command
        .args(["--jid", &format!("{user}@{DOMAIN}")])
        .args(["--server", &server.server(), "--insecure-plaintext"])
        .args(["--no-public-ip", "--no-upnp", "--no-natpmp"])
        .args(["--address", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data)
        .arg("--download-dir")
        .arg(data.with_extension("downloads"))
        .env("BITWEEN_PASSWORD", common::PASSWORD)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null());
    // The daemon ends with the benchmark, even one that is interrupted.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// A running `bitweend`'s JSON-RPC API, found through the address and
/// token files in its data dir.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    /// The API of the daemon with data dir `data`, once it has written both
    /// files.
    fn find(http: &reqwest::Client, data: &Path) -> Option<Api> {
        let addr = std::fs::read_to_string(bitween::api::http::address_file(data)).ok()?;
        let token = std::fs::read_to_string(bitween::api::http::token_file(data)).ok()?;
        Some(Api {
            http: http.clone(),
            url: format!("http://{}/api", addr.trim()),
            token: token.trim().to_string(),
        })
    }

    /// The result of `method`, or `None` if the call failed.
    async fn call(&self, method: &str, params: Value) -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .ok()?;
        let v: Value = reply.json().await.ok()?;
        v.get("result").cloned()
    }

    async fn online(&self) -> bool {
        self.call("status", json!([]))
            .await
            .is_some_and(|v| v["connection"].get("Online").is_some())
    }

    async fn has_hit(&self, text: &str) -> bool {
        self.call("search", json!({"text": text, "limit": 1}))
            .await
            .and_then(|v| v.as_array().map(|a| !a.is_empty()))
            .unwrap_or(false)
    }
}

/// Waits until the daemon `child` with data dir `data` says through its
/// API that it is online; its API. Panics if it ends or takes a minute.
async fn api_online(http: &reqwest::Client, data: &Path, child: &mut Child) -> Api {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(api) = Api::find(http, data) {
            if api.online().await {
                return api;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "bitweend ended before it was online"
        );
        assert!(Instant::now() < deadline, "bitweend not online after 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
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
    if wanted("transfer") {
        let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
        transfer_rows(&server, tmp.path(), &sizes).await;
    }
}

// ----- start-up ------------------------------------------------------------

/// `bitweend` started `runs` times, each with a fresh data dir: the time
/// from starting the process until its API reports it online.
async fn startup_row(server: &Prosody, http: &reqwest::Client, dir: &Path, runs: usize) {
    let mut times = Vec::new();
    for i in 0..runs {
        let data = dir.join(format!("startup{i}"));
        let t = Instant::now();
        let mut child = bitweend(server, "carol", &data, &[]).spawn().unwrap();
        api_online(http, &data, &mut child).await;
        times.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(data.with_extension("downloads"));
    }
    let s = median(&times);
    row(
        &format!(
            "bitweend start until its API reports online (median of {runs}, each with a fresh data dir)"
        ),
        "< 500 ms",
        format!(
            "{} (runs {})",
            ms(s),
            times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
        ),
        Some(s < Duration::from_millis(500)),
    );
}

// ----- publish to receive ------------------------------------------------------

async fn latency_rows(server: &Prosody, sizes: &Sizes) {
    // Publish-to-receive on the local server.
    let alice_peer = Peer::login(server, "alice", "lat").await;
    let mut bob_peer = Peer::login(server, "bob", "lat").await;
    let mut lat = Vec::new();
    for i in 0..sizes.latency_runs as u32 {
        let list = shares(3, 1_000 + i);
        lat.push(publish_until_seen(&alice_peer, &mut bob_peer, &list, "the change").await);
    }
    let p50 = median(&lat);
    row(
        &format!("publish to receive, p50 of {}", sizes.latency_runs),
        "< 100 ms",
        ms(p50),
        Some(p50 < Duration::from_millis(100)),
    );

    // A large list (with chunks) until the contact has all of it.
    let big = shares(sizes.big_list, 7);
    let d = publish_until_seen(&alice_peer, &mut bob_peer, &big, "the large list").await;
    row(
        &format!(
            "{} shares at the contact after publish",
            thousands(sizes.big_list as u64)
        ),
        "< 2 s",
        ms(d),
        Some(d < Duration::from_secs(2)),
    );
    alice_peer.xmpp.shutdown().await;
    bob_peer.xmpp.shutdown().await;
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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
        c.resource(&format!("alice@{DOMAIN}"), "lat")
            .is_some_and(|r| r.shares == list)
    })
    .await;
    t.elapsed()
}

// ----- memory ----------------------------------------------------------------

/// Memory: a `bitweend` process sharing 100 files and holding a large
/// catalog (the lists travelling in chunks), idle: its peak and current
/// RSS, and what the current one is made of.
async fn memory_row(http: &reqwest::Client, dir: &Path, sizes: &Sizes) {
    let users: Vec<String> = (0..sizes.contacts).map(|i| format!("c{i}")).collect();
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
    let mut child = bitweend(&server, "dave", &data, &wrap)
        .args(&args)
        .spawn()
        .unwrap();
    let mut peers = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let p = Peer::login(&server, u, "pc").await;
        p.xmpp
            .set_local(ResourceShares {
                shares: shares(sizes.per_contact, 50_000 + i as u32),
                addresses: vec!["127.0.0.1:1".parse().unwrap()],
                more: None,
            })
            .unwrap();
        peers.push(p);
    }
    // Wait until dave's catalog holds all of it (asking its API).
    let total = u64::from(sizes.contacts) * u64::from(sizes.per_contact);
    let patience = if wrap.is_empty() { 300 } else { 3600 };
    let deadline = Instant::now() + Duration::from_secs(patience);
    loop {
        let (status, own) = match Api::find(http, &data) {
            Some(api) => (
                api.call("status", json!([])).await.unwrap_or_default(),
                api.call("shares", json!([])).await.unwrap_or_default(),
            ),
            None => (Value::Null, Value::Null),
        };
        if status["catalog"]["shares"] == total && own.as_array().is_some_and(|a| a.len() == 100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dave's catalog never filled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // idle
    let pid = child.id();
    let (peak, now) = (proc_mib(pid, "VmHWM:"), proc_mib(pid, "VmRSS:"));
    // What the resident memory is now: the heap and stacks (anonymous) or
    // the program's own code and data (file-backed).
    let (anon, file) = (proc_mib(pid, "RssAnon:"), proc_mib(pid, "RssFile:"));
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
    row(
        &format!(
            "bitweend idle, 100 own shares, {} shares from {} contacts: peak RSS",
            thousands(total),
            sizes.contacts
        ),
        "< 80 MB",
        format!(
            "{peak:.0} MiB (idle now {now:.0} MiB: {anon:.0} MiB heap and stacks, {file:.0} MiB code and files)"
        ),
        Some(peak * 1.048_576 < 80.0),
    );
}

// ----- memory under a hostile contact ----------------------------------------------

/// A contact (mallory, a bare XMPP client) publishes list after list, each
/// under a resource name not used before, each pointing at the most chunks
/// a reader fetches, every chunk filled to the size limit. Each list is
/// left in place until the daemon (erin) shows shares of it, then its
/// chunk nodes are deleted (which keeps the server's memory flat). The
/// daemon's peak RSS, after the first list and after the last.
async fn hostile_row(http: &reqwest::Client, dir: &Path, sizes: &Sizes) {
    let server = Prosody::start(&["erin", "mallory"], &[("erin", "mallory")]);
    let data = dir.join("erin");
    let mut child = bitweend(&server, "erin", &data, &[]).spawn().unwrap();
    let api = api_online(http, &data, &mut child).await;
    let pid = child.id();
    let mut mallory = RawClient::login(&server, "mallory").await;
    // How many shares fill one chunk (names of one length in every list).
    let per_chunk = chunks::split(&hostile_list(0, 5_000))
        .expect("a few chunks")
        .first()
        .expect("one chunk")
        .len();
    let per_list = per_chunk * usize::from(sizes.hostile_chunks);
    let (mut after_first, mut missed) = (0.0, 0);
    let t = Instant::now();
    for k in 0..sizes.hostile_lists {
        let resource = format!("device{k:04}");
        let list = hostile_list(k, per_list);
        let parts = chunks::split(&list).expect("within the chunk limit");
        assert_eq!(parts.len(), usize::from(sizes.hostile_chunks));
        let version = chunks::version_of(&list);
        let nodes: Vec<String> = (1..=parts.len() as u16)
            .map(|n| chunks::chunk_node(&resource, n))
            .collect();
        let started = Instant::now();
        mallory
            .sets(
                nodes
                    .iter()
                    .zip(&parts)
                    .map(|(node, part)| publish(node, chunks::chunk_element(&version, part)))
                    .collect(),
            )
            .await;
        let item = UserShares {
            resources: [(
                resource.clone(),
                ResourceShares {
                    shares: vec![],
                    addresses: vec!["127.0.0.1:1".parse().unwrap()],
                    more: Some(More {
                        version,
                        chunks: parts.len() as u16,
                        total: list.len() as u32,
                    }),
                },
            )]
            .into(),
        };
        drop((list, parts));
        let published = started.elapsed();
        mallory
            .sets(vec![publish(bitween::NS_SHARES, to_element(&item))])
            .await;
        // Until erin shows shares of this list (or gives up on it).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !api.has_hit(&format!("list {k:04} file")).await {
            if Instant::now() > deadline {
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shown = started.elapsed();
        if k == 0 {
            after_first = proc_mib(pid, "VmHWM:");
        }
        mallory
            .sets(nodes.iter().map(|n| delete_node(n)).collect())
            .await;
        // Progress, on stderr (not a figure).
        eprintln!(
            "hostile list {k}: chunks published after {}, shown after {}, deleted after {}; peak RSS so far {:.0} MiB",
            secs(published),
            secs(shown),
            secs(started.elapsed()),
            proc_mib(pid, "VmHWM:")
        );
    }
    let elapsed = t.elapsed();
    let (peak, now) = (proc_mib(pid, "VmHWM:"), proc_mib(pid, "VmRSS:"));
    let _ = child.kill();
    let _ = child.wait();
    mallory.end().await;
    let shown = if missed == 0 {
        String::new()
    } else {
        format!("; {missed} lists never showed")
    };
    row(
        &format!(
            "bitweend under a hostile contact: {} lists in {}, each under a fresh resource name with {} chunks of {} shares (filled to the size limit): peak RSS",
            sizes.hostile_lists,
            secs(elapsed),
            sizes.hostile_chunks,
            thousands(per_chunk as u64),
        ),
        &format!("< {HOSTILE_BOUND_MB:.0} MB"),
        format!("{peak:.0} MiB (after the first list {after_first:.0} MiB; now {now:.0} MiB{shown})"),
        // A list that never showed was not read: the figure would not be
        // what it says.
        Some(peak * 1.048_576 < HOSTILE_BOUND_MB && missed == 0),
    );
}

/// List `k` of the hostile contact: `n` shares with names of one length.
fn hostile_list(k: u32, n: usize) -> Vec<Share> {
    (0..n)
        .map(|i| {
            Share::from_wire(
                &format!("{k:08x}{i:032x}"),
                &format!("hostile list {k:04} file {i:06}.bin"),
                "1000000",
            )
            .unwrap()
        })
        .collect()
}

const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";

/// `<pubsub><publish node><item id="current">payload</item></publish></pubsub>`.
fn publish(node: &str, payload: Element) -> Element {
    Element::builder("pubsub", NS_PUBSUB)
        .append(
            Element::builder("publish", NS_PUBSUB)
                .attr("node".try_into().unwrap(), node)
                .append(
                    Element::builder("item", NS_PUBSUB)
                        .attr("id".try_into().unwrap(), "current")
                        .append(payload)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Deletes one of our own PEP nodes.
fn delete_node(node: &str) -> Element {
    let owner = "http://jabber.org/protocol/pubsub#owner";
    Element::builder("pubsub", owner)
        .append(
            Element::builder("delete", owner)
                .attr("node".try_into().unwrap(), node)
                .build(),
        )
        .build()
}

/// A bare tokio-xmpp client, for what our own client would never send.
struct RawClient {
    client: tokio_xmpp::Client,
    server: String,
    user: String,
    next_id: u64,
}

impl RawClient {
    async fn login(server: &Prosody, user: &str) -> RawClient {
        RawClient {
            client: Self::connect(&server.server(), user).await,
            server: server.server(),
            user: user.to_string(),
            next_id: 0,
        }
    }

    async fn connect(server: &str, user: &str) -> tokio_xmpp::Client {
        use futures::StreamExt;
        let mut client = tokio_xmpp::Client::new_plaintext(
            tokio_xmpp::jid::BareJid::new(&format!("{user}@{DOMAIN}")).unwrap(),
            common::PASSWORD,
            tokio_xmpp::connect::DnsConfig::addr(server),
            tokio_xmpp::xmlstream::Timeouts::tight(),
        );
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = client.next().await {
                if ev.is_online() {
                    return;
                }
            }
            panic!("{user}'s raw client ended before it was online");
        })
        .await
        .expect("the raw client logs in within 20 s");
        client
    }

    /// Sends every IQ set at once, then waits for every answer (matched by
    /// id). Each of them is idempotent, so when no answer has come for 10 s
    /// the missing ones are sent again, by a fresh client: tokio-xmpp's
    /// client now and then never yields an answer that its stream received
    /// (Prosody's log shows the result sent and acknowledged; see also
    /// tests/pep.rs).
    async fn sets(&mut self, payloads: Vec<Element>) {
        use futures::StreamExt;
        use tokio_xmpp::parsers::iq::Iq;
        let mut waiting: HashMap<String, Element> = HashMap::new();
        let mut to_send: Vec<Element> = payloads;
        for _attempt in 0..3 {
            for payload in to_send.drain(..) {
                self.next_id += 1;
                let id = format!("hostile-{}", self.next_id);
                let iq = Iq::Set {
                    from: None,
                    to: None,
                    id: id.clone(),
                    payload: payload.clone(),
                };
                self.client
                    .send_stanza(iq.into())
                    .await
                    .expect("the raw client sends");
                waiting.insert(id, payload);
            }
            // Answers come one after the other: a quiet spell means stuck.
            while !waiting.is_empty() {
                match tokio::time::timeout(Duration::from_secs(10), self.client.next()).await {
                    Ok(Some(tokio_xmpp::Event::Stanza(tokio_xmpp::Stanza::Iq(iq)))) => {
                        if let Iq::Error { error, .. } = &iq {
                            panic!("the server refused a hostile IQ: {error:?}");
                        }
                        waiting.remove(iq.id());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("the raw client's stream ended"),
                    Err(_) => break,
                }
            }
            if waiting.is_empty() {
                return;
            }
            eprintln!(
                "{}'s raw client: {} IQs unanswered after 10 s without an answer; sending them again from a fresh client",
                self.user,
                waiting.len()
            );
            to_send = waiting.drain().map(|(_, p)| p).collect();
            let fresh = Self::connect(&self.server, &self.user).await;
            let _ = std::mem::replace(&mut self.client, fresh).send_end().await;
        }
        panic!("no answer to {} IQs after three tries", to_send.len());
    }

    async fn end(self) {
        let _ = self.client.send_end().await;
    }
}

// ----- hashing and transfer ---------------------------------------------------------

/// Hashing a large random file in place against `sha1sum`, interleaved
/// (sha1sum, hash, sha1sum, ...), medians of each; then its download by
/// Bitween and by librqbit alone, interleaved, the order swapped every
/// round, each after `sync`. Both seeders live through every round and
/// seed a file they hashed in place on this run; every download is by a
/// fresh session into an empty folder. librqbit alone runs with Bitween's
/// session settings (`torrent::base_session_options`): what differs is
/// what Bitween adds.
async fn transfer_rows(server: &Prosody, dir: &Path, sizes: &Sizes) {
    let bytes = sizes.bytes;
    let mib = bytes >> 20;
    let file_dir = dir.join("files");
    std::fs::create_dir_all(&file_dir).unwrap();
    let file = file_dir.join("big.bin");
    random_file(&file, bytes);
    // librqbit alone seeds a copy: opening the file to seed it touches it,
    // and alice would then withdraw her share of the original.
    let copy_dir = dir.join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("big.bin");
    std::fs::copy(&file, &copy).unwrap();
    sync();
    let _ = sha1sum(&file); // the page cache holds both files from here
    let _ = sha1sum(&copy);

    let (alice, _arx) = start(server, "alice", &dir.join("alice")).await;
    let (mut floors, mut hashings) = (Vec::new(), Vec::new());
    let mut share = None;
    for _ in 0..sizes.hash_runs {
        floors.push(sha1sum(&file));
        if let Some(s) = share.take() {
            let s: Share = s;
            alice.engine.unshare(&s.hash).await.unwrap();
        }
        let t = Instant::now();
        share = Some(alice.engine.share(&file).await.unwrap());
        hashings.push(t.elapsed());
    }
    let share = share.expect("shared");
    let (floor, hashing) = (median(&floors), median(&hashings));
    row(
        &format!(
            "hash {mib} MiB in place, median of {} (sha1sum: {}, {})",
            sizes.hash_runs,
            ms(floor),
            spread(&floors, ms)
        ),
        "<= sha1sum",
        format!(
            "{} ({:.2}x sha1sum; {})",
            ms(hashing),
            hashing.as_secs_f64() / floor.as_secs_f64(),
            spread(&hashings, ms)
        ),
        Some(hashing <= floor),
    );

    let seeder = LibrqbitSeeder::start(&copy, &dir.join("rq-seed")).await;
    let (mut apps, mut alones) = (Vec::new(), Vec::new());
    for round in 0..sizes.transfer_rounds {
        let bob_dir = dir.join(format!("bob{round}"));
        let rq_dir = dir.join(format!("rq{round}"));
        if round % 2 == 0 {
            apps.push(bitween_download(server, &bob_dir, share.hash).await);
            alones.push(seeder.download(&rq_dir).await);
        } else {
            alones.push(seeder.download(&rq_dir).await);
            apps.push(bitween_download(server, &bob_dir, share.hash).await);
        }
        std::fs::remove_dir_all(&bob_dir).unwrap();
        std::fs::remove_dir_all(&rq_dir).unwrap();
    }
    seeder.session.stop().await;
    alice.shutdown().await;
    let (app, engine_alone) = (median(&apps), median(&alones));
    let ratio = app.as_secs_f64() / engine_alone.as_secs_f64();
    let rounds = sizes.transfer_rounds;
    row(
        &format!("download {mib} MiB: librqbit alone, median of {rounds}"),
        "-",
        format!(
            "{:.0} MiB/s ({}; {})",
            mibs(bytes, engine_alone),
            secs(engine_alone),
            spread(&alones, secs)
        ),
        None,
    );
    row(
        &format!("download {mib} MiB: Bitween, median of {rounds}"),
        "<= 1.15x librqbit alone",
        format!(
            "{:.0} MiB/s ({}, {ratio:.2}x; {})",
            mibs(bytes, app),
            secs(app),
            spread(&apps, secs)
        ),
        Some(ratio <= 1.15),
    );
    row(
        &format!(
            "sha1sum {mib} MiB (verification floor), median of {}",
            sizes.hash_runs
        ),
        "-",
        format!("{:.0} MiB/s", mibs(bytes, floor)),
        None,
    );
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

/// librqbit alone: a session with Bitween's session settings seeding a
/// file it hashed in place, for the whole benchmark.
struct LibrqbitSeeder {
    session: Arc<librqbit::Session>,
    magnet: String,
    port: u16,
}

/// A librqbit session with Bitween's session settings, its state in `dir`.
async fn librqbit_session(dir: &Path, output: PathBuf) -> Arc<librqbit::Session> {
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        download_dir: output.clone(),
        ..EngineConfig::default()
    };
    librqbit::Session::new_with_opts(output, base_session_options(&config, 0))
        .await
        .unwrap()
}

impl LibrqbitSeeder {
    async fn start(file: &Path, dir: &Path) -> LibrqbitSeeder {
        let session = librqbit_session(dir, dir.join("out")).await;
        let (created, seeding) = session
            .create_and_serve_torrent(
                file,
                librqbit::CreateTorrentOptions {
                    name: None,
                    trackers: vec![],
                    piece_length: None,
                },
            )
            .await
            .unwrap();
        seeding.wait_until_initialized().await.unwrap();
        let port = session.listen_addr().unwrap().port();
        // By magnet, like the app: the metadata comes from the peer too.
        let magnet = format!("magnet:?xt=urn:btih:{}", created.info_hash().as_string());
        LibrqbitSeeder {
            session,
            magnet,
            port,
        }
    }

    /// A fresh librqbit session downloads the file: the time from adding
    /// the torrent until it is complete.
    async fn download(&self, dir: &Path) -> Duration {
        let leecher = librqbit_session(dir, dir.join("out")).await;
        sync();
        let t = Instant::now();
        let handle = leecher
            .add_torrent(
                librqbit::AddTorrent::from_url(&self.magnet),
                Some(librqbit::AddTorrentOptions {
                    initial_peers: Some(vec![format!("127.0.0.1:{}", self.port).parse().unwrap()]),
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
        leecher.stop().await;
        d
    }
}
