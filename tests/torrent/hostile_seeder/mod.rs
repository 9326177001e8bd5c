//! A hostile seeder: a contact publishes a hash whose metadata (served over
//! BEP 9 by a tiny fake peer here) names files outside the download folder,
//! disguised or overlong names, too many files, another size than listed
//! or more than the disk holds. The download is refused with a clear error
//! and nothing is written anywhere.
//!
//! And a contact who lists a real torrent under a harmless name whose
//! metadata names a file the user already has: the download gets a fresh
//! name (`thesis (1).pdf`), never opens what exists (a file, a folder, a
//! symbolic link to elsewhere), and cancel-with-delete removes only what
//! the download made. Every file that was there before is compared byte
//! for byte afterwards.

mod fake_peer;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bitween::events::{Event, TransferState};
use bitween::service::Service;
use bitween::shares::{InfoHash, ResourceShares, Share, ShareName};
use bitween_testkit::{Peer, Prosody};
use fake_peer::{fake_peer, fake_seeder, info_multi, info_single, info_sized};
use sha1::{Digest, Sha1};
use tokio::net::TcpListener;

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_metadata_is_refused_and_nothing_escapes() {
    let server = Prosody::start(&["bob", "mallory"], &[("bob", "mallory")]);
    let tmp = tempfile::tempdir().unwrap();
    let bob_dir = tmp.path().join("deep/inside/bob");
    let bob = Service::start(bitween_testkit::service_config(
        &server, "bob", &bob_dir, None,
    ))
    .await
    .unwrap();
    let mallory = Peer::login(&server, "mallory", "evil").await;
    let mut events = bob.events.subscribe();

    let many: Vec<[String; 1]> = (0..10_001).map(|i| [format!("f{i}")]).collect();
    let many: Vec<Vec<&str>> = many.iter().map(|p| vec![p[0].as_str()]).collect();
    let many: Vec<&[&str]> = many.iter().map(Vec::as_slice).collect();
    let long = "x".repeat(256);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dot-dot components",
            info_multi(&[&["..", "..", "escape"]]),
            "nothing was written",
        ),
        (
            "an absolute name",
            info_single("/tmp/absolute-escape"),
            "nothing was written",
        ),
        (
            "a NUL in a name",
            info_multi(&[&["ok", "nul\0byte"]]),
            "nothing was written",
        ),
        (
            "a drive letter",
            info_multi(&[&["C:escape"]]),
            "nothing was written",
        ),
        (
            "a bidirectional override",
            info_single("invoice\u{202e}fdp.exe"),
            "bidirectional",
        ),
        (
            "a name over 255 bytes",
            info_multi(&[&[&long]]),
            "255 bytes",
        ),
        ("10,001 files", info_multi(&many), "at most 10000"),
    ];
    for (what, info, expected) in cases {
        let size = if what == "10,001 files" { 100_010 } else { 10 };
        let hash = InfoHash(Sha1::digest(&info).into());
        let seeder = fake_seeder(info).await;
        mallory
            .xmpp
            .set_local(ResourceShares {
                shares: vec![Share {
                    hash,
                    name: ShareName::new("innocent.txt").unwrap(),
                    size,
                }],
                addresses: vec![seeder],
                more: None,
            })
            .unwrap();
        let catalog = bob.catalog.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !catalog.sources(&hash).iter().any(|s| s.online) {
            tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("mallory's entry arrives")
                .unwrap();
        }
        bob.engine.download(hash, None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let reason = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(Event::DownloadFailed { hash: h, reason })) if h == hash => break reason,
                Ok(Ok(Event::DownloadFinished { hash: h, .. })) if h == hash => {
                    panic!("{what}: the hostile download finished")
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "{what}: no clear refusal within 60 s; transfers: {:#?}",
                    bob.engine.transfers()
                ),
            }
        };
        assert!(
            reason.contains(expected) || reason.contains("invalid"),
            "{what}: the reason should say what was refused: {reason}"
        );
        assert!(
            bob.engine.transfers().iter().all(|t| t.hash != hash),
            "{what}: the refused download is gone"
        );
    }
    // Nothing anywhere in the test's folder but bob's own state.
    let written: Vec<String> = files_under(tmp.path())
        .into_iter()
        .filter(|f| !f.contains("/bob/data/"))
        .collect();
    assert!(written.is_empty(), "files were written: {written:?}");
    assert!(!Path::new("/tmp/absolute-escape").exists());
    mallory.xmpp.shutdown().await;
    bob.shutdown().await;
}

/// What is at a path, without following links: a file's bytes, a folder,
/// or a link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Folder,
    Link(std::path::PathBuf),
}

/// Everything under `dir` (links are recorded, never followed).
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Entry> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(p.clone(), Entry::Link(std::fs::read_link(&p).unwrap()));
        } else if meta.is_dir() {
            out.insert(p.clone(), Entry::Folder);
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), Entry::File(std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// bob; mallory, his contact, listing torrents under names of her choice;
/// and a seeder (not bob's contact) whose torrents she lists.
struct Lab {
    _server: Prosody,
    tmp: tempfile::TempDir,
    bob: Service,
    events: tokio::sync::broadcast::Receiver<Event>,
    mallory: Peer,
    seeder: Service,
    listed: Vec<Share>,
}

impl Lab {
    async fn start() -> Lab {
        let server = Prosody::start(&["bob", "mallory", "seeder"], &[("bob", "mallory")]);
        let tmp = tempfile::tempdir().unwrap();
        let bob = Service::start(bitween_testkit::service_config(
            &server,
            "bob",
            &tmp.path().join("bob"),
            None,
        ))
        .await
        .unwrap();
        let seeder = Service::start(bitween_testkit::service_config(
            &server,
            "seeder",
            &tmp.path().join("seeder"),
            None,
        ))
        .await
        .unwrap();
        let mallory = Peer::login(&server, "mallory", "evil").await;
        let events = bob.events.subscribe();
        Lab {
            _server: server,
            tmp,
            bob,
            events,
            mallory,
            seeder,
            listed: vec![],
        }
    }

    fn downloads(&self) -> std::path::PathBuf {
        self.tmp.path().join("bob/downloads")
    }

    /// The seeder shares `path`; mallory lists it as `listed_name`.
    async fn offer(&mut self, path: &Path, listed_name: &str) -> Share {
        let real = self.seeder.engine.share(path).await.unwrap();
        let share = Share {
            name: ShareName::new(listed_name).unwrap(),
            ..real
        };
        self.listed.push(share.clone());
        let seeder_addr: SocketAddr = format!("127.0.0.1:{}", self.seeder.engine.listen_port())
            .parse()
            .unwrap();
        self.mallory
            .xmpp
            .set_local(ResourceShares {
                shares: self.listed.clone(),
                addresses: vec![seeder_addr],
                more: None,
            })
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self
            .bob
            .catalog
            .sources(&share.hash)
            .iter()
            .any(|s| s.online)
        {
            let _ = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("mallory's list reaches bob");
        }
        share
    }

    /// Downloads `hash` to the end; the transfer as it finished, or why it
    /// failed.
    async fn download(&mut self, hash: InfoHash) -> Result<bitween::torrent::Transfer, String> {
        self.bob.engine.download(hash, None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(Event::DownloadFailed { hash: h, reason })) if h == hash => {
                    return Err(reason)
                }
                Ok(Ok(Event::DownloadFinished { hash: h, .. })) if h == hash => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "download {hash} neither finished nor failed in 60 s: {:#?}",
                    self.bob.engine.transfers()
                ),
            }
        }
        Ok(self
            .bob
            .engine
            .transfers()
            .into_iter()
            .find(|t| t.hash == hash)
            .expect("the finished download is listed"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_exists_is_never_touched_and_downloads_get_fresh_names() {
    let mut lab = Lab::start().await;
    let downloads = lab.downloads();
    let outside = lab.tmp.path().join("outside");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // What the user has: a thesis; a link to a file elsewhere; a link to
    // nothing (yet) elsewhere; an album folder.
    std::fs::write(downloads.join("thesis.pdf"), b"three years of my work").unwrap();
    std::fs::write(outside.join("elsewhere.txt"), b"not in the download folder").unwrap();
    std::os::unix::fs::symlink(outside.join("elsewhere.txt"), downloads.join("report.txt"))
        .unwrap();
    std::os::unix::fs::symlink(
        outside.join("not-there.bin"),
        downloads.join("dangling.bin"),
    )
    .unwrap();
    std::fs::create_dir(downloads.join("album")).unwrap();
    std::fs::write(downloads.join("album/track1.mp3"), b"my own recording").unwrap();
    // The user's files: the download folder and the folder beside it.
    let user_files = || {
        let mut all = snapshot(&downloads);
        all.extend(snapshot(&outside));
        all
    };
    let before = user_files();

    // The seeder's files of the same names, listed by mallory as harmless.
    let src = lab.tmp.path().join("seeder/files");
    std::fs::create_dir_all(src.join("album")).unwrap();
    let contents: [(&str, &[u8]); 3] = [
        ("thesis.pdf", b"ten bytes!"),
        ("report.txt", b"twelve bytes"),
        ("dangling.bin", b"fourteen bytes"),
    ];
    for (name, bytes) in contents {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    std::fs::write(src.join("album/track1.mp3"), b"their track one").unwrap();
    std::fs::write(src.join("album/track2.mp3"), b"their track two").unwrap();
    let cases = [
        ("thesis.pdf", "holiday.mkv", "thesis (1).pdf"),
        ("report.txt", "cat.jpg", "report (1).txt"),
        ("dangling.bin", "song.ogg", "dangling (1).bin"),
        ("album", "photos", "album (1)"),
    ];
    let mut got = vec![];
    for (name, listed, fresh) in cases {
        let share = lab.offer(&src.join(name), listed).await;
        let t = lab
            .download(share.hash)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.path, downloads.join(fresh), "{name}: the name on disk");
        assert_eq!(t.folder, downloads, "{name}: the folder that holds it");
        assert_eq!(t.name, name, "{name}: the torrent's own name");
        assert_eq!(
            t.listed_name.as_deref(),
            Some(listed),
            "{name}: both names shown"
        );
        got.push((name, t));
    }
    // Open and Show in folder use these paths: a folder share is the folder
    // itself (not folder/name/name), held by its parent.
    let seeded = lab.seeder.engine.transfers();
    let album = seeded.iter().find(|t| t.name == "album").unwrap();
    assert_eq!(album.path, src.join("album"));
    assert_eq!(album.folder, src);
    let thesis = seeded.iter().find(|t| t.name == "thesis.pdf").unwrap();
    assert_eq!(thesis.path, src.join("thesis.pdf"));
    // What arrived is the seeder's, under the fresh names.
    for (name, t) in &got {
        if *name == "album" {
            for track in ["track1.mp3", "track2.mp3"] {
                assert_eq!(
                    std::fs::read(t.path.join(track)).unwrap(),
                    std::fs::read(src.join("album").join(track)).unwrap()
                );
            }
        } else {
            assert_eq!(
                std::fs::read(&t.path).unwrap(),
                std::fs::read(src.join(name)).unwrap()
            );
        }
    }
    // Everything that was there before is byte for byte as it was.
    let after = user_files();
    for (path, entry) in &before {
        assert_eq!(after.get(path), Some(entry), "{} changed", path.display());
    }
    assert!(!outside.join("not-there.bin").exists());
    assert!(!downloads.join("album/track2.mp3").exists());

    // Cancel with delete: only what the downloads made goes.
    for (name, t) in &got {
        lab.bob.engine.cancel(&t.hash, true).await.unwrap();
        assert!(
            std::fs::symlink_metadata(&t.path).is_err(),
            "{name}: {} was not deleted",
            t.path.display()
        );
    }
    let after = user_files();
    for (path, entry) in &before {
        assert_eq!(after.get(path), Some(entry), "{} changed", path.display());
    }
    let in_downloads: Vec<_> = after.keys().filter(|p| p.starts_with(&downloads)).collect();
    let expected: Vec<_> = before
        .keys()
        .filter(|p| p.starts_with(&downloads))
        .collect();
    assert_eq!(
        in_downloads, expected,
        "the download folder holds exactly what it held"
    );
    lab.mallory.xmpp.shutdown().await;
    lab.seeder.shutdown().await;
    lab.bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_must_match_the_list_and_fit_on_the_disk() {
    let mut lab = Lab::start().await;
    std::fs::create_dir_all(lab.downloads()).unwrap();
    let before = snapshot(lab.tmp.path());
    // (metadata, listed size, what the refusal must say)
    let tib = 1u64 << 40;
    let cases: Vec<(Vec<u8>, u64, String)> = vec![
        (
            info_single("thesis.pdf"),
            999,
            "innocent.txt's metadata says 10 bytes, the list said 999".into(),
        ),
        (info_sized("huge.bin", tib, 1 << 28), tib, "free".into()),
    ];
    for (info, listed, expected) in cases {
        let hash = InfoHash(Sha1::digest(&info).into());
        let seeder = fake_seeder(info).await;
        let share = Share {
            hash,
            name: ShareName::new("innocent.txt").unwrap(),
            size: listed,
        };
        lab.mallory
            .xmpp
            .set_local(ResourceShares {
                shares: vec![share],
                addresses: vec![seeder],
                more: None,
            })
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !lab.bob.catalog.sources(&hash).iter().any(|s| s.online) {
            let _ = tokio::time::timeout_at(deadline, lab.events.recv())
                .await
                .expect("mallory's list reaches bob");
        }
        let reason = lab
            .download(hash)
            .await
            .expect_err("the download is refused");
        assert!(reason.contains(&expected), "{reason}");
        assert!(reason.contains("nothing was written"), "{reason}");
    }
    assert_eq!(
        snapshot(lab.tmp.path())
            .into_iter()
            .filter(|(p, _)| !p.to_string_lossy().contains("/data/"))
            .collect::<Vec<_>>(),
        before
            .into_iter()
            .filter(|(p, _)| !p.to_string_lossy().contains("/data/"))
            .collect::<Vec<_>>()
    );
    lab.mallory.xmpp.shutdown().await;
    lab.bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_exchange_never_makes_us_connect_elsewhere() {
    let mut lab = Lab::start().await;
    // A listener of ours that only peer exchange names.
    let trap = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_addr = trap.local_addr().unwrap();
    let (knock_tx, mut knocks) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((_, from)) = trap.accept().await {
            let _ = knock_tx.send(from);
        }
    });
    let info = info_single("bait.bin");
    let hash = InfoHash(Sha1::digest(&info).into());
    let peer = fake_peer(info, Some(trap_addr)).await;
    lab.mallory
        .xmpp
        .set_local(ResourceShares {
            shares: vec![Share {
                hash,
                name: ShareName::new("bait.bin").unwrap(),
                size: 10,
            }],
            addresses: vec![peer],
            more: None,
        })
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lab.bob.catalog.sources(&hash).iter().any(|s| s.online) {
        let _ = tokio::time::timeout_at(deadline, lab.events.recv())
            .await
            .expect("mallory's list reaches bob");
    }
    lab.bob.engine.download(hash, None).await.unwrap();
    // The download goes live (its metadata came from mallory's peer, which
    // then hands over the trap's address at every handshake).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let live = lab.bob.engine.transfers().iter().any(|t| {
            t.hash == hash && t.state == TransferState::Downloading && !t.peers.is_empty()
        });
        if live {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the download never reached mallory's peer: {:#?}",
            lab.bob.engine.transfers()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peers = lab
        .bob
        .engine
        .transfers()
        .into_iter()
        .find(|t| t.hash == hash)
        .unwrap()
        .peers;
    assert!(
        peers
            .iter()
            .all(|p| p.contact.as_deref() == Some("mallory@localhost/evil")),
        "every peer is named by its contact: {peers:?}"
    );
    // librqbit would dial a peer exchange address within a second or two.
    let knock = tokio::time::timeout(Duration::from_secs(15), knocks.recv()).await;
    assert!(
        knock.is_err(),
        "bob connected to an address only peer exchange named: {knock:?}"
    );
    lab.mallory.xmpp.shutdown().await;
    lab.bob.shutdown().await;
}
