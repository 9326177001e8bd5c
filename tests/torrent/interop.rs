//! Interop with an independent BitTorrent implementation, qBittorrent
//! (Debian's qbittorrent-nox, libtorrent-rasterbar), driven through its Web
//! API: it downloads a file our app shares given only the info hash and our
//! address, and our app downloads a file it seeds, found through a
//! contact's published entry. This proves the bytes travel as plain
//! BitTorrent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitween::events::Event;
use bitween::service::Service;
use bitween::shares::{Catalog, ResourceShares};
use bitween::torrent::{Engine, EngineConfig};
use bitween_testkit::{free_port, Peer, Prosody};

/// A qbittorrent-nox with its own profile, on loopback ports.
struct Qbt {
    child: Child,
    web: u16,
    pub port: u16,
    dir: PathBuf,
}

impl Qbt {
    fn start(dir: &Path) -> Qbt {
        let (web, port) = (free_port(), free_port());
        let config = dir.join("qBittorrent/config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("qBittorrent.conf"),
            format!(
                "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\nSession\\DHTEnabled=false\n\
                 Session\\LSDEnabled=false\nSession\\PeXEnabled=false\nSession\\Port={port}\n\
                 Session\\Interface=lo\nSession\\InterfaceName=lo\n\n[Preferences]\n\
                 WebUI\\Address=127.0.0.1\nWebUI\\Port={web}\nWebUI\\LocalHostAuth=false\n\
                 WebUI\\CSRFProtection=false\nWebUI\\HostHeaderValidation=false\n\
                 Connection\\PortRangeMin={port}\n"
            ),
        )
        .unwrap();
        let child = Command::new("qbittorrent-nox")
            .arg(format!("--profile={}", dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qbittorrent-nox starts (scripts/test.sh installs it)");
        let q = Qbt {
            child,
            web,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while q.get("app/version").is_err() {
            assert!(
                Instant::now() < deadline,
                "qbittorrent-nox Web API did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        q
    }

    fn url(&self, method: &str) -> String {
        format!("http://127.0.0.1:{}/api/v2/{method}", self.web)
    }

    fn get(&self, method: &str) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["-sf", &self.url(method)])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("curl {method}: {}", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn post(&self, method: &str, fields: &[(&str, String)]) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sf", &self.url(method)]);
        for (k, v) in fields {
            cmd.args(["-F", &format!("{k}={v}")]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "qBittorrent refused {method}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Waits until qBittorrent reports `hash` complete (its Web API has no
    /// push channel, so this asks once a second, within a deadline).
    fn wait_complete(&self, hash: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let info = self
                .get(&format!("torrents/info?hashes={hash}"))
                .unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
            let progress = json[0]["progress"].as_f64().unwrap_or(0.0);
            if progress >= 1.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "qBittorrent did not complete {hash}: {info}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Qbt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

fn random_file(path: &Path, bytes: usize) {
    use rand::RngCore;
    let mut data = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(path, data).unwrap();
}

async fn service(server: &Prosody, user: &str, dir: &Path) -> Service {
    Service::start(bitween_testkit::service_config(server, user, dir, None))
        .await
        .expect("service starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn qbittorrent_and_bitween_exchange_files_both_ways() {
    let server = Prosody::start(&["bob", "mallory"], &[("bob", "mallory")]);
    let tmp = tempfile::tempdir().unwrap();
    let qbt = Qbt::start(&tmp.path().join("qbt"));
    let bob = service(&server, "bob", &tmp.path().join("bob")).await;

    // 1. qBittorrent downloads what bob shares, given the hash and bob's
    //    address only.
    let mine = tmp.path().join("bob-files");
    std::fs::create_dir_all(&mine).unwrap();
    // An exact multiple of the 2 MiB piece: librqbit's own torrent builder
    // added a hash too many there, and qBittorrent refused the torrent.
    random_file(&mine.join("to-qbt.bin"), 4 * 1024 * 1024);
    let share = bob.engine.share(&mine.join("to-qbt.bin")).await.unwrap();
    let qbt_save = tmp.path().join("qbt-downloads");
    qbt.post(
        "torrents/add",
        &[
            ("urls", format!("magnet:?xt=urn:btih:{}", share.hash)),
            ("savepath", qbt_save.display().to_string()),
        ],
    );
    // Give qBittorrent a moment to register the magnet, then the peer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !qbt
        .get("torrents/info")
        .unwrap_or_default()
        .contains(&share.hash.to_hex())
    {
        assert!(
            Instant::now() < deadline,
            "qBittorrent did not take the magnet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    qbt.post(
        "torrents/addPeers",
        &[
            ("hashes", share.hash.to_hex()),
            ("peers", format!("127.0.0.1:{}", bob.engine.listen_port())),
        ],
    );
    let hash = share.hash.to_hex();
    let q = &qbt;
    tokio::task::block_in_place(|| q.wait_complete(&hash, Duration::from_secs(120)));
    assert_eq!(
        std::fs::read(qbt_save.join("to-qbt.bin")).unwrap(),
        std::fs::read(mine.join("to-qbt.bin")).unwrap(),
        "qBittorrent's copy differs"
    );

    // 1b. A folder torrent of ours: files aligned to pieces with BEP 47
    //     padding files, which libtorrent reads (and never writes).
    let album = mine.join("album");
    std::fs::create_dir_all(&album).unwrap();
    random_file(&album.join("one.bin"), 3 * 1024 * 1024 + 123);
    random_file(&album.join("two.bin"), 1024 * 1024 + 7);
    random_file(&album.join("three.bin"), 77);
    let folder = bob.engine.share(&album).await.unwrap();
    let torrent = std::fs::read(
        tmp.path()
            .join(format!("bob/data/torrents/{}.torrent", folder.hash)),
    )
    .unwrap();
    assert!(
        torrent.windows(8).any(|w| w == b"1:p6:len"),
        "the folder torrent has padding files"
    );
    qbt.post(
        "torrents/add",
        &[
            ("urls", format!("magnet:?xt=urn:btih:{}", folder.hash)),
            ("savepath", qbt_save.display().to_string()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !qbt
        .get("torrents/info")
        .unwrap_or_default()
        .contains(&folder.hash.to_hex())
    {
        assert!(
            Instant::now() < deadline,
            "qBittorrent did not take the magnet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    qbt.post(
        "torrents/addPeers",
        &[
            ("hashes", folder.hash.to_hex()),
            ("peers", format!("127.0.0.1:{}", bob.engine.listen_port())),
        ],
    );
    let folder_hash = folder.hash.to_hex();
    tokio::task::block_in_place(|| q.wait_complete(&folder_hash, Duration::from_secs(120)));
    for name in ["one.bin", "two.bin", "three.bin"] {
        assert_eq!(
            std::fs::read(qbt_save.join("album").join(name)).unwrap(),
            std::fs::read(album.join(name)).unwrap(),
            "qBittorrent's {name} differs"
        );
    }

    // 2. bob downloads what qBittorrent seeds. The .torrent is made by a
    //    throwaway engine (qBittorrent 4.5's API cannot create one); the
    //    seeding is qBittorrent's alone.
    let theirs = tmp.path().join("qbt-seed");
    std::fs::create_dir_all(&theirs).unwrap();
    random_file(&theirs.join("from-qbt.bin"), 3 * 1024 * 1024 + 7);
    let maker_dir = tmp.path().join("maker");
    let maker = Engine::start(
        EngineConfig {
            data_dir: maker_dir.clone(),
            download_dir: maker_dir.join("dl"),
            listen_port: 0,
            upload_limit: None,
            download_limit: None,
            allow_loopback_peers: true,
            relay: true,
            idle_unload: bitween::torrent::IDLE_UNLOAD,
        },
        Catalog::default(),
        bitween::events::EventBus::new(),
    )
    .await
    .unwrap();
    let seeded = maker.share(&theirs.join("from-qbt.bin")).await.unwrap();
    maker.shutdown().await;
    let torrent_file = maker_dir.join(format!("torrents/{}.torrent", seeded.hash));
    qbt.post(
        "torrents/add",
        &[
            ("torrents", format!("@{}", torrent_file.display())),
            ("savepath", theirs.display().to_string()),
        ],
    );
    let hash = seeded.hash.to_hex();
    tokio::task::block_in_place(|| q.wait_complete(&hash, Duration::from_secs(60)));

    // mallory, bob's contact, publishes the hash with qBittorrent's address.
    let mallory = Peer::login(&server, "mallory", "seedbox").await;
    mallory
        .xmpp
        .set_local(ResourceShares {
            shares: vec![seeded.clone()],
            addresses: vec![format!("127.0.0.1:{}", qbt.port).parse().unwrap()],
            more: None,
        })
        .unwrap();
    let mut events = bob.events.subscribe();
    let c = bob.catalog.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !c.sources(&seeded.hash).iter().any(|s| s.online) {
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("mallory's entry reaches bob")
            .unwrap();
    }
    bob.engine.download(seeded.hash, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::DownloadFinished { hash, .. })) if hash == seeded.hash => break,
            Ok(Ok(Event::DownloadFailed { reason, .. })) => panic!("download failed: {reason}"),
            Ok(_) => {}
            Err(_) => panic!(
                "bob did not get the file from qBittorrent: {:#?}",
                bob.engine.transfers()
            ),
        }
    }
    assert_eq!(
        std::fs::read(tmp.path().join("bob/downloads/from-qbt.bin")).unwrap(),
        std::fs::read(theirs.join("from-qbt.bin")).unwrap(),
        "bob's copy differs"
    );
    let t = bob.engine.transfers();
    let peers: Vec<_> = t
        .iter()
        .find(|t| t.hash == seeded.hash)
        .unwrap()
        .peers
        .clone();
    assert!(
        peers
            .iter()
            .all(|p| p.address.ends_with(&format!(":{}", qbt.port)) || p.contact.is_none()),
        "the only published source was qBittorrent: {peers:?}"
    );
    mallory.xmpp.shutdown().await;
    bob.shutdown().await;
}
