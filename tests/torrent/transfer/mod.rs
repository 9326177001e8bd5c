//! End to end over real parts: Prosody carries the share lists, librqbit
//! sessions on loopback carry the bytes. A file and a folder arrive
//! byte-identical (over Prosody and over ejabberd); a third contact swarms
//! from two sources, picks up a source that appears late, and finishes from
//! the other when one leaves.

pub(crate) mod node;

use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitween::events::Event;
use bitween::shares::InfoHash;
use bitween::torrent::{Transfer, TransferState};
use bitween_testkit::on_each_server;
use bitween_testkit::{Prosody, Server, ServerKind, DOMAIN};

fn jid(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

use node::{assert_same_file, random_file, start};

on_each_server!(a_file_and_a_folder_arrive_byte_identical);

async fn a_file_and_a_folder_arrive_byte_identical(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let mut alice = start(&server, "alice", &tmp.path().join("alice"), None).await;
    let mut bob = start(&server, "bob", &tmp.path().join("bob"), None).await;

    let mine = alice.dir.join("mine");
    std::fs::create_dir_all(mine.join("album/inner")).unwrap();
    random_file(&mine.join("big.bin"), 50 * 1024 * 1024);
    random_file(&mine.join("album/one.jpg"), 300_000);
    random_file(&mine.join("album/two.jpg"), 1_234_567);
    random_file(&mine.join("album/inner/three.txt"), 10);
    let file = alice.svc.engine.share(&mine.join("big.bin")).await.unwrap();
    let folder = alice.svc.engine.share(&mine.join("album")).await.unwrap();
    assert_eq!(file.size, 50 * 1024 * 1024);
    assert_eq!(folder.size, 300_000 + 1_234_567 + 10);
    // Sharing the same path again is a no-op.
    assert_eq!(
        alice.svc.engine.share(&mine.join("big.bin")).await.unwrap(),
        file
    );
    // A path that does not exist gets a clear error.
    let err = alice
        .svc
        .engine
        .share(&mine.join("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    bob.wait_source("alice", file.hash).await;
    bob.wait_source("alice", folder.hash).await;
    bob.svc.engine.download(file.hash, None).await.unwrap();
    bob.svc.engine.download(folder.hash, None).await.unwrap();
    bob.wait_finished(file.hash, Duration::from_secs(120)).await;
    bob.wait_finished(folder.hash, Duration::from_secs(120))
        .await;

    let got = bob.dir.join("downloads");
    assert_same_file(&mine.join("big.bin"), &got.join("big.bin"));
    for f in ["one.jpg", "two.jpg", "inner/three.txt"] {
        assert_same_file(&mine.join("album").join(f), &got.join("album").join(f));
    }
    // bob re-shares what he downloaded: alice sees him as a source.
    alice.wait_source("bob", file.hash).await;
    alice.wait_source("bob", folder.hash).await;

    bob.svc.shutdown().await;
    alice.svc.shutdown().await;
}

fn peers_by_contact(t: &[Transfer], hash: InfoHash) -> Vec<String> {
    let mut v: Vec<String> = t
        .iter()
        .filter(|t| t.hash == hash)
        .flat_map(|t| t.peers.iter().filter_map(|p| p.contact.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swarm_uses_late_sources_and_survives_a_leaving_one() {
    let server = Prosody::start(
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol"), ("bob", "carol")],
    );
    let tmp = tempfile::tempdir().unwrap();
    let alice = start(&server, "alice", &tmp.path().join("alice"), None).await;
    let bob_dir = tmp.path().join("bob");
    let mut bob = start(&server, "bob", &bob_dir, None).await;
    let original = alice.dir.join("film.bin");
    std::fs::create_dir_all(&alice.dir).unwrap();
    random_file(&original, 50 * 1024 * 1024);
    let film = alice.svc.engine.share(&original).await.unwrap();

    // bob gets the whole file first, then goes offline.
    bob.wait_source("alice", film.hash).await;
    bob.svc.engine.download(film.hash, None).await.unwrap();
    bob.wait_finished(film.hash, Duration::from_secs(120)).await;
    let bob_port = bob.svc.engine.listen_port();
    bob.svc.shutdown().await;
    drop(bob);

    // From now on seeders upload slowly, so carol's download is still
    // running when the swarm changes.
    let limit = Some(2 * 1024 * 1024);
    alice
        .svc
        .engine
        .set_upload_limit(limit.and_then(NonZeroU32::new));

    // carol starts while only alice is online ...
    let mut carol = start(&server, "carol", &tmp.path().join("carol"), None).await;
    carol.wait_source("alice", film.hash).await;
    carol.svc.engine.download(film.hash, None).await.unwrap();
    let c = carol.svc.catalog.clone();
    assert!(
        !c.sources(&film.hash)
            .iter()
            .any(|s| s.jid == jid("bob") && s.online),
        "bob is offline at the start"
    );
    carol
        .wait_for("carol downloading from alice", Duration::from_secs(60), |e| {
            matches!(e, Event::Transfers { transfers } if transfers.iter().any(|t| t.hash == film.hash && t.state == TransferState::Downloading && t.done_bytes > 0))
        })
        .await;

    // ... then bob comes back (restart: his download seeds again) and joins
    // the running download as a source.
    let mut bob = start(&server, "bob", &bob_dir, limit).await;
    assert_eq!(
        bob.svc.engine.listen_port(),
        bob_port,
        "port 0 picks a port once and keeps it"
    );
    bob.wait_for("bob seeding again after his restart", Duration::from_secs(60), |e| {
        matches!(e, Event::Transfers { transfers } if transfers.iter().any(|t| t.hash == film.hash && t.state == TransferState::Seeding))
    })
    .await;
    let e = carol
        .wait_for("carol's peers to include alice and bob", Duration::from_secs(60), |e| {
            matches!(e, Event::Transfers { transfers } if peers_by_contact(transfers, film.hash).len() == 2)
        })
        .await;
    let Event::Transfers { transfers } = e else {
        unreachable!()
    };
    assert_eq!(
        peers_by_contact(&transfers, film.hash),
        vec![format!("{}/pc", jid("alice")), format!("{}/pc", jid("bob"))]
    );
    let t = transfers.iter().find(|t| t.hash == film.hash).unwrap();
    assert!(
        t.done_bytes < t.total_bytes,
        "still running when the swarm changed"
    );

    // alice leaves mid-transfer; carol finishes from bob.
    alice.svc.shutdown().await;
    carol
        .wait_finished(film.hash, Duration::from_secs(120))
        .await;
    assert_same_file(&original, &carol.dir.join("downloads/film.bin"));

    carol.svc.shutdown().await;
    bob.svc.shutdown().await;
}

/// Runs bob's side of the kill test in a child process (this same test
/// binary), so the parent can SIGKILL it mid-download. Does nothing when
/// run as an ordinary test.
#[tokio::test(flavor = "multi_thread")]
async fn child_bob_download() {
    let Ok(dir) = std::env::var("BITWEEN_CHILD_DIR") else {
        return;
    };
    let port: u16 = std::env::var("BITWEEN_CHILD_XMPP_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let hash: InfoHash = std::env::var("BITWEEN_CHILD_HASH")
        .unwrap()
        .parse()
        .unwrap();
    let server = Prosody::attach(port);
    let mut bob = start(&server, "bob", Path::new(&dir), None).await;
    bob.wait_source("alice", hash).await;
    bob.svc.engine.download(hash, None).await.unwrap();
    loop {
        if let Ok(Event::Transfers { transfers }) = bob.events.recv().await {
            for t in transfers.iter().filter(|t| t.hash == hash) {
                println!("PROGRESS {} {}", t.done_bytes, t.total_bytes);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_downloader_resumes_without_starting_over() {
    use std::io::BufRead;
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    // alice uploads slowly so the kill lands mid-transfer.
    let alice = start(
        &server,
        "alice",
        &tmp.path().join("alice"),
        Some(4 * 1024 * 1024),
    )
    .await;
    std::fs::create_dir_all(&alice.dir).unwrap();
    let original = alice.dir.join("movie.bin");
    random_file(&original, 50 * 1024 * 1024);
    let movie = alice.svc.engine.share(&original).await.unwrap();

    let bob_dir = tmp.path().join("bob");
    // The child test's full name: its module's path without the crate.
    let (_, module) = module_path!().split_once("::").unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("{module}::child_bob_download"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BITWEEN_CHILD_DIR", &bob_dir)
        .env("BITWEEN_CHILD_XMPP_PORT", server.port.to_string())
        .env("BITWEEN_CHILD_HASH", movie.hash.to_hex())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let at_kill = tokio::task::spawn_blocking(move || {
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("PROGRESS ") {
                let (done, total) = rest.split_once(' ').unwrap();
                let (done, total): (u64, u64) = (done.parse().unwrap(), total.parse().unwrap());
                if total > 0 && done * 2 >= total {
                    return done;
                }
            }
        }
        panic!("the child ended before reaching 50 %");
    });
    let at_kill = tokio::time::timeout(Duration::from_secs(120), at_kill)
        .await
        .expect("the child reaches 50 % within 2 minutes")
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        at_kill < movie.size,
        "killed before the end ({at_kill} bytes)"
    );

    let mut bob = start(&server, "bob", &bob_dir, None).await;
    bob.wait_finished(movie.hash, Duration::from_secs(120))
        .await;
    assert_same_file(&original, &bob.dir.join("downloads/movie.bin"));
    let t = bob
        .svc
        .engine
        .transfers()
        .into_iter()
        .find(|t| t.hash == movie.hash)
        .unwrap();
    assert!(
        t.fetched_bytes > 0,
        "bob fetched the rest after the restart"
    );
    assert!(
        t.fetched_bytes < movie.size,
        "after the restart bob fetched {} bytes of {}: verified pieces were downloaded again",
        t.fetched_bytes,
        movie.size
    );
    bob.svc.shutdown().await;
    alice.svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_cancel_and_a_changed_share() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let alice_dir = tmp.path().join("alice");
    let alice = start(&server, "alice", &alice_dir, Some(2 * 1024 * 1024)).await;
    let mut bob = start(&server, "bob", &tmp.path().join("bob"), None).await;
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    random_file(&files.join("slow.bin"), 20 * 1024 * 1024);
    random_file(&files.join("dropped.bin"), 20 * 1024 * 1024);
    let slow = alice
        .svc
        .engine
        .share(&files.join("slow.bin"))
        .await
        .unwrap();
    let dropped = alice
        .svc
        .engine
        .share(&files.join("dropped.bin"))
        .await
        .unwrap();
    bob.wait_source("alice", slow.hash).await;
    bob.wait_source("alice", dropped.hash).await;

    // Pause and resume.
    bob.svc.engine.download(slow.hash, None).await.unwrap();
    bob.wait_for("slow.bin under way", Duration::from_secs(60), |e| {
        matches!(e, Event::Transfers { transfers } if transfers.iter().any(|t| t.hash == slow.hash && t.done_bytes > 0))
    })
    .await;
    bob.svc.engine.pause(&slow.hash).await.unwrap();
    bob.wait_for("slow.bin paused", Duration::from_secs(20), |e| {
        matches!(e, Event::Transfers { transfers } if transfers.iter().any(|t| t.hash == slow.hash && t.state == TransferState::Paused))
    })
    .await;
    bob.svc.engine.resume(&slow.hash).await.unwrap();
    bob.wait_finished(slow.hash, Duration::from_secs(120)).await;
    assert_same_file(&files.join("slow.bin"), &bob.dir.join("downloads/slow.bin"));

    // Cancel, deleting the partial data.
    bob.svc.engine.download(dropped.hash, None).await.unwrap();
    bob.wait_for("dropped.bin under way", Duration::from_secs(60), |e| {
        matches!(e, Event::Transfers { transfers } if transfers.iter().any(|t| t.hash == dropped.hash && t.done_bytes > 0))
    })
    .await;
    bob.svc.engine.cancel(&dropped.hash, true).await.unwrap();
    assert!(bob
        .svc
        .engine
        .transfers()
        .iter()
        .all(|t| t.hash != dropped.hash));
    assert!(
        !bob.dir.join("downloads/dropped.bin").exists(),
        "the partial file was deleted"
    );
    // Deleting the data of one's own share is refused; the file stays.
    let err = alice
        .svc
        .engine
        .cancel(&dropped.hash, true)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("never deletes your files"),
        "{err}"
    );
    assert!(files.join("dropped.bin").exists());
    bob.svc.shutdown().await;

    // A shared file that changes while the app runs is hashed again and
    // published as a new version of the same share (never the old hash
    // with new bytes) ...
    let mut alice = alice;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(files.join("slow.bin"))
        .unwrap();
    f.write_all(b"changed!").unwrap();
    drop(f);
    let updated = alice
        .wait_for(
            "the changed share republished",
            Duration::from_secs(30),
            |e| matches!(e, Event::ShareUpdated { old, .. } if *old == slow.hash),
        )
        .await;
    let Event::ShareUpdated { new, name, .. } = updated else {
        unreachable!()
    };
    assert_eq!(name, "slow.bin");
    let shares = alice.svc.engine.local_shares();
    assert!(shares.iter().all(|s| s.hash != slow.hash), "{shares:?}");
    assert!(
        shares
            .iter()
            .any(|s| s.hash == new && s.name.as_str() == "slow.bin"),
        "{shares:?}"
    );

    // ... and one deleted while the app was closed is withdrawn.
    alice.svc.shutdown().await;
    drop(alice);
    std::fs::remove_file(files.join("dropped.bin")).unwrap();
    let mut alice = start(&server, "alice", &alice_dir, None).await;
    let reason = alice
        .wait_broken(
            "the deleted share withdrawn",
            dropped.hash,
            Duration::from_secs(30),
        )
        .await;
    assert!(reason.contains("no longer exists"), "{reason}");
    // The new version of slow.bin came back after the restart; nothing else.
    let left: Vec<_> = alice
        .svc
        .engine
        .local_shares()
        .into_iter()
        .map(|s| s.hash)
        .collect();
    assert_eq!(left, vec![new]);
    alice.svc.shutdown().await;
}

/// A file just hashed seeds at once without being read again: it is idle
/// (not loaded into librqbit until a contact wants it), while a restart
/// checks every piece of a file whose modification time changed, though
/// its size did not: a piece changed while the app was closed is caught.
/// (A change that puts the modification time back is caught by `verify`:
/// `restart.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_new_share_seeds_at_once_and_a_restart_checks_a_touched_one_in_full() {
    let server = Prosody::start(&["alice"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let alice_dir = tmp.path().join("alice");
    let alice = start(&server, "alice", &alice_dir, None).await;
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let file = files.join("big.bin");
    random_file(&file, 64 * 1024 * 1024); // 32 pieces of 2 MiB
    let share = alice.svc.engine.share(&file).await.unwrap();

    let seeding = alice
        .svc
        .engine
        .transfers()
        .into_iter()
        .find(|t| t.hash == share.hash)
        .expect("the share is a transfer");
    assert_eq!(
        (seeding.state, seeding.done_bytes, seeding.idle),
        (TransferState::Seeding, 64 * 1024 * 1024, true),
        "{seeding:?}"
    );

    alice.svc.shutdown().await;
    drop(alice);
    // One byte in the middle piece changes; the size stays.
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap() + Duration::from_secs(1);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 33 * 1024 * 1024).unwrap();
    f.write_all_at(&[!byte[0]], 33 * 1024 * 1024).unwrap();
    f.set_modified(modified).unwrap();
    drop(f);

    let mut alice = start(&server, "alice", &alice_dir, None).await;
    let reason = alice
        .wait_broken(
            "the changed share withdrawn after the restart",
            share.hash,
            Duration::from_secs(60),
        )
        .await;
    assert!(reason.contains("changed on disk"), "{reason}");
    assert!(alice.svc.engine.local_shares().is_empty());
    alice.svc.shutdown().await;
}

/// Torrents added at the same moment each stay themselves: librqbit's JSON
/// persistence hands out torrent ids from what it has saved so far, so two
/// adds racing each other once got the same id, and the second one the
/// first one's torrent (a download then "finished" with the wrong size and
/// no file). The engine numbers torrents itself.
#[tokio::test(flavor = "multi_thread")]
async fn shares_and_downloads_added_at_once_each_get_their_own_torrent() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let alice = start(&server, "alice", &tmp.path().join("alice"), None).await;
    let mut bob = start(&server, "bob", &tmp.path().join("bob"), None).await;
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let sizes = [3_000_000, 1_000, 200_000, 5_000_000, 77, 1_500_000];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = files.join(format!("f{i}.bin"));
            random_file(&p, *n);
            p
        })
        .collect();
    let shares = futures::future::join_all(paths.iter().map(|p| alice.svc.engine.share(p))).await;
    let shares: Vec<_> = shares.into_iter().map(Result::unwrap).collect();
    for (share, size) in shares.iter().zip(sizes) {
        assert_eq!(share.size, size as u64, "{share:?}");
    }
    let transfers = alice.svc.engine.transfers();
    for share in &shares {
        let t = transfers
            .iter()
            .find(|t| t.hash == share.hash)
            .expect("seeding");
        assert_eq!(
            (t.name.as_str(), t.total_bytes),
            (share.name.as_str(), share.size)
        );
    }

    for share in &shares {
        bob.wait_source("alice", share.hash).await;
    }
    futures::future::join_all(shares.iter().map(|s| bob.svc.engine.download(s.hash, None)))
        .await
        .into_iter()
        .for_each(Result::unwrap);
    for share in &shares {
        bob.wait_finished(share.hash, Duration::from_secs(120))
            .await;
    }
    for (i, path) in paths.iter().enumerate() {
        assert_same_file(path, &bob.dir.join(format!("downloads/f{i}.bin")));
    }
    bob.svc.shutdown().await;
    alice.svc.shutdown().await;
}

/// Quitting while a large file is being hashed stops the hashing instead of
/// waiting for it (the blocking read would otherwise hold the shutdown).
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_stops_hashing_a_large_file() {
    let server = Prosody::start(&["alice"], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut alice = start(&server, "alice", &tmp.path().join("alice"), None).await;
    let file = tmp.path().join("huge.img");
    // Sparse: 16 GiB of zeros that take no disk and read as fast as memory.
    std::fs::File::create(&file)
        .unwrap()
        .set_len(16 << 30)
        .unwrap();
    let engine = alice.svc.engine.clone();
    let sharing = tokio::spawn(async move { engine.share(&file).await });
    alice
        .wait_for(
            "hashing under way",
            Duration::from_secs(30),
            |e| matches!(e, Event::HashingProgress { done, .. } if *done > 0),
        )
        .await;
    alice.svc.shutdown().await;
    let err = tokio::time::timeout(Duration::from_secs(60), sharing)
        .await
        .expect("the share returns once the engine stops")
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("was stopped"), "{err}");
}
