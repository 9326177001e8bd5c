//! Hashing against `sha1sum`, and a transfer through Bitween against
//! librqbit alone, each on the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitween::events::Event;
use bitween::shares::{InfoHash, Share};
use bitween::torrent::{base_session_options, EngineConfig};
use bitween_testkit::Prosody;

use crate::daemon::{random_file, sha1sum, start, sync, wait};
use crate::{median, mibs, ms, row, secs, spread, Sizes};

/// Hashing a large random file in place against `sha1sum`, interleaved
/// (sha1sum, hash, sha1sum, ...), medians of each; then its download by
/// Bitween and by librqbit alone, interleaved, the order swapped every
/// round, each after `sync`. Both seeders live through every round and
/// seed a file they hashed in place on this run; every download is by a
/// fresh session into an empty folder. librqbit alone runs with Bitween's
/// session settings (`torrent::base_session_options`): what differs is
/// what Bitween adds.
pub async fn transfer_rows(server: &Prosody, dir: &Path, sizes: &Sizes) {
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

    hashing_threads_row(&file, sizes.hash_runs);

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

/// Issue 17, item 3: the same file hashed by the same code on every core
/// and on one thread, interleaved, medians of `runs`; the ratio of the two.
fn hashing_threads_row(file: &Path, runs: usize) {
    let threads = bitween::torrent::hashing_threads();
    let (mut all, mut one) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let a = bitween::torrent::hash_path(file, threads).unwrap();
        all.push(t.elapsed());
        let t = Instant::now();
        let b = bitween::torrent::hash_path(file, 1).unwrap();
        one.push(t.elapsed());
        assert_eq!(a, b, "the same torrent on any number of threads");
    }
    let (all_m, one_m) = (median(&all), median(&one));
    let ratio = one_m.as_secs_f64() / all_m.as_secs_f64();
    let mib = std::fs::metadata(file).unwrap().len() >> 20;
    row(
        &format!(
            "hash {mib} MiB on {threads} threads vs 1 thread, median of {runs} (1 thread: {}, {})",
            ms(one_m),
            spread(&one, ms)
        ),
        ">= 1.7x on 2 cores",
        format!("{} ({ratio:.2}x; {})", ms(all_m), spread(&all, ms)),
        Some(ratio >= 1.7),
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
