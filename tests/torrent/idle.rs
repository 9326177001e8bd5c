//! Idle own shares (issue 17, items 1 and 4): after a restart, shares whose
//! files did not change seed without a byte of them read, and are not
//! loaded into librqbit until a peer wants one; a contact then downloads
//! one through a real connection (the handshake loads it), byte-identical;
//! once nobody transfers it, it is unloaded again.

use std::path::Path;
use std::time::{Duration, Instant};

use bitween_testkit::bitweend::Daemon;
use bitween_testkit::Prosody;
use serde_json::Value;

use crate::restart::{fill, rchar, wait_seeding};

const FILE: usize = 48 * 1024 * 1024;
/// The idle time of the restarted daemon (`--idle-unload-secs`).
const IDLE_SECS: &str = "2";

fn transfer(daemon: &Daemon, hash: &str) -> Value {
    let transfers = daemon.json(&["transfers"]);
    transfers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["hash"] == hash)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `what` holds of `daemon`'s transfer of `hash`.
fn wait_transfer(daemon: &Daemon, hash: &str, what: &str, until: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = transfer(daemon, hash);
        if until(&t) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {t:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn share(daemon: &Daemon, path: &Path) -> String {
    daemon.json(&["share", path.to_str().unwrap()])[0]["hash"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_unchanged_library_restarts_idle_and_loads_a_share_when_a_contact_wants_it() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let library = tmp.path().join("library");
    let album = library.join("album");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..4 {
        fill(&album.join(format!("track {i}.flac")), FILE / 4, i + 1);
    }
    let single = library.join("film.mkv");
    fill(&single, FILE, 9);
    let shared = (2 * FILE) as u64;

    let alice = Daemon::start(&server, "alice", &dir);
    let album_hash = share(&alice, &album);
    let film_hash = share(&alice, &single);
    assert_eq!(alice.terminate().code(), Some(0));

    let alice = Daemon::start_with(&server, "alice", &dir, &["--idle-unload-secs", IDLE_SECS]);
    wait_seeding(&alice, &[&album_hash, &film_hash]);
    let read = rchar(alice.child.id());
    eprintln!("the restart read {read} bytes of {shared} shared");
    assert!(
        read * 100 < shared,
        "the restart read {read} bytes of {shared} shared (1 % allowed)"
    );
    for hash in [&album_hash, &film_hash] {
        assert_eq!(
            transfer(&alice, hash)["idle"],
            true,
            "an unchanged share is idle after a restart"
        );
    }

    // bob downloads the film: his connection names it, alice loads it.
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bob.json(&["catalog"]).to_string().contains(&film_hash) {
        assert!(Instant::now() < deadline, "bob never saw alice's film");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = bob.cli(&["download", &film_hash]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bob.cli(&["wait", &film_hash]);
    assert!(
        out.status.success(),
        "wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(tmp.path().join("bob/downloads/film.mkv")).unwrap()
            == std::fs::read(&single).unwrap(),
        "bob's copy is byte-identical"
    );
    assert_eq!(
        transfer(&alice, &album_hash)["idle"],
        true,
        "the share nobody asked for stays idle"
    );

    // Nobody wants the film any more (bob seeds it himself): it is
    // unloaded after the idle time, and still seeds.
    wait_transfer(&alice, &film_hash, "the film is unloaded once idle", |t| {
        t["idle"] == true && t["state"] == "seeding"
    });
    bob.terminate();
    alice.terminate();
}
