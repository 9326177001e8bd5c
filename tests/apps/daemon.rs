//! The headless way: two `bitweend` processes on a real Prosody and on a
//! real ejabberd, driven only through `bitweenc`; and the API's refusals (token, Host, Origin, bad
//! JSON, unknown methods, bad paths), each with its JSON-RPC error and
//! nothing changed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitween_testkit::bitweend::Daemon;
use bitween_testkit::on_each_server;
use bitween_testkit::{Prosody, Server, ServerKind, DOMAIN, PASSWORD};
use serde_json::{json, Value};

on_each_server!(sync: two_daemons_share_and_download_through_the_cli);

fn two_daemons_share_and_download_through_the_cli(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));

    let file = tmp.path().join("report 2026.pdf");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let shared = alice.json(&["share", file.to_str().unwrap()]);
    let hash = shared[0]["hash"].as_str().unwrap().to_string();
    assert_eq!(shared[0]["size"], 3_000_000);
    assert_eq!(alice.json(&["shares"])[0]["hash"], hash.as_str());

    // bob finds it by name (his catalog fills as alice's item arrives).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hits = bob.json(&["search", "REPORT"]);
        if hits
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["share"]["hash"] == hash.as_str() && h["online"] == true)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's catalog never listed alice's file: {hits}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The original's methods keep their shapes.
    let alice_port = alice.json(&["status"])["bt_port"].as_u64().unwrap();
    let hashes = bob.rpc("xmpp.get_hashes", json!([]));
    assert_eq!(hashes, json!({ hash.clone(): [["127.0.0.1", alice_port]] }));
    let shares = bob.rpc("xmpp.get_shares", json!([]));
    assert_eq!(
        shares,
        json!({ format!("alice@{DOMAIN}"): { "pc": {
            "ip_v4": [["127.0.0.1", alice_port]],
            "ip_v6": [],
            "shares": { hash.clone(): { "hash": hash, "name": "report 2026.pdf", "size": 3_000_000 } },
        }}})
    );
    let catalog = bob.json(&["catalog"]);
    assert_eq!(catalog[0]["jid"], format!("alice@{DOMAIN}"));
    let human = bob.cli(&["catalog"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("report 2026.pdf"));

    // Global flags work after the command too.
    let out = bob.cli(&["download", &hash, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bob.cli(&["wait", &hash]);
    assert!(
        out.status.success(),
        "wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(tmp.path().join("bob/downloads/report 2026.pdf")).unwrap(),
        content
    );
    let transfers = bob.json(&["transfers"]);
    assert_eq!(transfers[0]["state"], "seeding");
    // `verify` without a hash checks shares only: bob's finished download
    // (listed among his shares) is not one, and is left alone.
    let out = bob.cli(&["verify"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let status = bob.json(&["status"]);
    assert_eq!(status["jid"], format!("bob@{DOMAIN}"));
    assert!(status["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("127.0.0.1:")));

    // `exit` stops alice's daemon; SIGTERM stops bob's, cleanly, within 5 s.
    let out = alice.cli(&["exit"]);
    assert!(out.status.success());
    let mut alice = alice;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = alice.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "Api.exit did not stop bitweend");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(bob.terminate().success());
}

#[test]
fn the_api_refuses_bad_requests_and_changes_nothing() {
    let server = Prosody::start(&["carol"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let carol = Daemon::start(&server, "carol", &tmp.path().join("carol"));
    let (addr, token) = carol.api();
    let url = format!("http://{addr}/api");
    let call = |headers: &[(&str, &str)], body: &str| -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            &url,
            "--data-binary",
            body,
        ]);
        for (k, v) in headers {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let auth = format!("Bearer {token}");
    let ok = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let req = |method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string()
    };

    let (code, v) = call(&[], &req("shares", json!([])));
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (401, Some(-32001)),
        "no token: {v}"
    );
    let (code, v) = call(
        &[("Authorization", "Bearer wrong")],
        &req("shares", json!([])),
    );
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (401, Some(-32001)),
        "wrong token: {v}"
    );
    let (code, v) = call(
        &[ok[0], ("Host", "evil.example")],
        &req("shares", json!([])),
    );
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (403, Some(-32002)),
        "foreign Host: {v}"
    );
    let (code, v) = call(
        &[ok[0], ("Origin", "http://evil.example")],
        &req("shares", json!([])),
    );
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (403, Some(-32002)),
        "browser origin: {v}"
    );
    let (code, v) = call(&ok, "{not json");
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (200, Some(-32700)),
        "bad JSON: {v}"
    );
    let (_, v) = call(&ok, &req("no.such_method", json!([])));
    assert_eq!(v["error"]["code"], -32601, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no.such_method"));
    let (_, v) = call(&ok, &req("bt.add_path", json!(["/does/not/exist"])));
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/does/not/exist"),
        "{v}"
    );
    let (_, v) = call(&ok, &req("download", json!({"hash": "xyz"})));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    // A successful call gets no CORS headers and the id back.
    let (code, v) = call(&ok, &req("bt.get_torrents", json!([])));
    assert_eq!((code, v["id"].as_i64()), (200, Some(7)));
    assert_eq!(
        v["result"],
        json!([]),
        "nothing was added by the refused calls"
    );
    let (_, v) = call(&ok, &req("xmpp.get_shares", json!([])));
    assert_eq!(v["result"], json!({}));
    let (_, v) = call(&ok, &req("Api.versions", json!([])));
    assert_eq!(v["result"]["api"], 1);

    // The token file is private; the CLI's exit codes say what went wrong.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(carol.data.join("api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(carol.cli(&["download", "nothex"]).status.code(), Some(2));
    assert_eq!(
        carol.cli(&["unshare", &"ab".repeat(20)]).status.code(),
        Some(1)
    );
    assert_eq!(carol.cli(&["no-such-command"]).status.code(), Some(2));
    let nowhere = Command::new(env!("CARGO_BIN_EXE_bitweenc"))
        .args(["--data-dir", "/nonexistent", "status"])
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(3));
    assert!(carol.terminate().success());
}

#[test]
fn sigterm_during_a_download_then_restart_continues() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    // alice uploads at 4 MiB/s so the download is still running at the
    // SIGTERM.
    let alice = Daemon::start_with(
        &server,
        "alice",
        &tmp.path().join("alice"),
        &["--upload-limit", "4194304"],
    );
    let bob_dir = tmp.path().join("bob");
    let bob = Daemon::start(&server, "bob", &bob_dir);
    let file = tmp.path().join("big.iso");
    let content: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &content).unwrap();
    let hash = alice.json(&["share", file.to_str().unwrap()])[0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bob
        .json(&["search", "big"])
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["share"]["hash"] == hash.as_str())
    {
        assert!(Instant::now() < deadline, "bob never saw alice's file");
        std::thread::sleep(Duration::from_millis(200));
    }
    bob.json(&["download", &hash]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = bob.json(&["transfers"]);
        let done = t[0]["done_bytes"].as_u64().unwrap_or(0);
        if done > 0 {
            assert!(done < 40_000_000, "finished before the SIGTERM");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's download never started: {t}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bob.terminate().success(), "bitweend exits 0 on SIGTERM");

    let bob = Daemon::start(&server, "bob", &bob_dir);
    let out = bob.cli(&["wait", &hash]);
    assert!(
        out.status.success(),
        "after the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(bob_dir.join("downloads/big.iso")).unwrap() == content,
        "the file differs"
    );
    assert!(bob.terminate().success());
    assert!(alice.terminate().success());
}

#[test]
fn settings_come_from_the_config_file_and_flags_win() {
    let server = Prosody::start(&["dave"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bitweend.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"jid": "nobody@{DOMAIN}", "server": "{}", "insecure-plaintext": true, "resource": "fromfile",
                "address": ["127.0.0.1"], "no-public-ip": true, "no-upnp": true, "no-natpmp": true, "bt-port": 0}}"#,
            server.server()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_bitweend"))
        .arg("--config")
        .arg(&cfg)
        .args(["--jid", &format!("dave@{DOMAIN}")])
        .arg("--data-dir")
        .arg(&data)
        .arg("--download-dir")
        .arg(tmp.path().join("dl"))
        .env("BITWEEN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let dave = Daemon { child, data };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dave.data.join("api-token").exists() {
        assert!(
            Instant::now() < deadline,
            "bitweend did not start from its settings file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = dave.json(&["status"]);
        if status["connection"]["Online"]["jid"] == format!("dave@{DOMAIN}/fromfile") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not online as dave/fromfile: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dave.terminate().success());

    // An invalid settings file is named in a clear error.
    std::fs::write(&cfg, r#"{"jid": "a@b", "colour": "blue"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitweend"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bitweend.json is invalid") && err.contains("colour"),
        "{err}"
    );
}

/// The resources of `user` that `watcher` holds an entry of, sorted.
fn entries_of(watcher: &Daemon, user: &str) -> Vec<String> {
    let shares = watcher.rpc("xmpp.get_shares", json!([]));
    let mut out: Vec<String> = shares[format!("{user}@{DOMAIN}")]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn wait_entries(watcher: &Daemon, user: &str, want: &[&str], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = entries_of(watcher, user);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {user}'s entries are {now:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_device_keeps_one_entry_and_dead_ones_go() {
    // A killed client's session ends a second later (not ten minutes).
    let server = Prosody::start_with(
        &["alice", "bob"],
        &[("alice", "bob")],
        "smacks_hibernation_time = 1",
    );
    let tmp = tempfile::tempdir().unwrap();
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    // A device of alice's that crashes leaves its entry behind ...
    let old = Daemon::start(&server, "alice", &tmp.path().join("old"));
    wait_entries(&bob, "alice", &["pc"], "the old device");
    drop(old);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        entries_of(&bob, "alice"),
        ["pc"],
        "a crash retracts nothing"
    );
    // ... which goes when another device of hers publishes. That device has
    // its own resource, kept in its data dir, through every restart (a
    // kill -9 each time: nothing is retracted cleanly).
    let dir = tmp.path().join("laptop");
    let mut laptop = Daemon::start_device(&server, "alice", &dir);
    let resource = std::fs::read_to_string(dir.join("data/resource"))
        .unwrap()
        .trim()
        .to_string();
    assert!(!resource.is_empty() && resource != "pc");
    wait_entries(
        &bob,
        "alice",
        &[&resource],
        "the laptop replaces the dead entry",
    );
    for round in 0..3 {
        drop(laptop);
        laptop = Daemon::start_device(&server, "alice", &dir);
        // Online again, bound to the same resource ...
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = laptop.json(&["status"]);
            let bound = status["connection"]["Online"]["jid"]
                .as_str()
                .unwrap_or_default();
            if !bound.is_empty() {
                assert!(bound.ends_with(&format!("/{resource}")), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "restart {round}: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // ... and its item still holds one entry for this device.
        wait_entries(
            &bob,
            "alice",
            &[&resource],
            &format!("restart {round}: still one entry"),
        );
    }
}

#[test]
fn the_api_stays_on_loopback_and_says_how_to_reach_it_from_elsewhere() {
    let server = Prosody::start(&["alice"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_bitweend");
    for extra in [
        &["--api", "0.0.0.0:0"][..],
        &["--api", "127.0.0.1:0", "--api-public"][..],
    ] {
        let out = Command::new(exe)
            .args(extra)
            .args([
                "--jid",
                &format!("alice@{DOMAIN}"),
                "--server",
                &server.server(),
            ])
            .args([
                "--insecure-plaintext",
                "--no-public-ip",
                "--no-upnp",
                "--no-natpmp",
            ])
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .env("BITWEEN_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("loopback only") && err.contains("ssh -N -L"),
            "{extra:?}: {err}"
        );
        assert!(
            !tmp.path().join("data/api-token").exists(),
            "{extra:?}: no API was started"
        );
    }
}

/// What the event stream sends within `secs` seconds to a client that says
/// it saw up to `last` (`None`: a first connection).
fn event_stream(daemon: &Daemon, last: Option<u64>, secs: u32) -> String {
    let (addr, token) = daemon.api();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sN",
        "-m",
        &secs.to_string(),
        &format!("http://{addr}/events"),
        "-H",
    ])
    .arg(format!("Authorization: Bearer {token}"));
    if let Some(last) = last {
        cmd.args(["-H", &format!("Last-Event-ID: {last}")]);
    }
    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
}

#[test]
fn the_event_stream_numbers_events_and_a_client_catches_up() {
    let server = Prosody::start(&["alice"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let file = tmp.path().join("note.txt");
    std::fs::write(&file, b"numbered").unwrap();
    // A client follows the stream while a file is shared.
    let live = std::thread::scope(|s| {
        let watcher = s.spawn(|| event_stream(&alice, None, 4));
        std::thread::sleep(Duration::from_secs(1));
        alice.json(&["share", file.to_str().unwrap()]);
        watcher.join().unwrap()
    });
    let ids = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id:"))
            .map(|i| i.trim().parse().unwrap())
            .collect()
    };
    let seen = ids(&live);
    assert!(seen.len() >= 2, "{live}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{live}");
    assert!(live.contains("\"HashingDone\""), "{live}");
    // Reconnecting after the first of them, it gets what followed, in
    // order (bar the per-second transfer snapshots), and no Resync.
    let caught_up = event_stream(&alice, Some(seen[0]), 2);
    let again = ids(&caught_up);
    assert!(!again.is_empty() && again[0] > seen[0], "{caught_up}");
    assert!(
        again
            .iter()
            .all(|i| seen.contains(i) || *i > *seen.last().unwrap()),
        "{caught_up}"
    );
    assert!(caught_up.contains("\"HashingDone\""), "{caught_up}");
    assert!(!caught_up.contains("Resync"), "{caught_up}");
    // An id of an earlier run, or one never sent, must reload.
    for lost in [5, u64::MAX / 2] {
        let text = event_stream(&alice, Some(lost), 2);
        let first = text.lines().find(|l| l.starts_with("data:")).unwrap_or("");
        assert_eq!(
            first.trim_start_matches("data:").trim(),
            r#"{"type":"Resync"}"#,
            "{lost}: {text}"
        );
    }
}
