//! A hostile seeder: a contact publishes a hash whose metadata (served over
//! BEP 9 by a tiny fake peer here) names files outside the download folder.
//! The download is refused with a clear error and nothing is written
//! outside the download folder.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bitween::events::Event;
use bitween::service::Service;
use bitween::shares::{InfoHash, ResourceShares, Share, ShareName};
use common::{Peer, Prosody};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bencoded info dictionary (keys in sorted order) with one piece.
fn info_multi(paths: &[&[&str]]) -> Vec<u8> {
    let mut files = String::new();
    for p in paths {
        let parts: String = p.iter().map(|c| format!("{}:{c}", c.len())).collect();
        files += &format!("d6:lengthi10e4:pathl{parts}ee");
    }
    let mut out =
        format!("d5:filesl{files}e4:name4:evil12:piece lengthi16384e6:pieces20:").into_bytes();
    out.extend_from_slice(&[7u8; 20]);
    out.push(b'e');
    out
}

fn info_single(name: &str) -> Vec<u8> {
    let mut out = format!(
        "d6:lengthi10e4:name{}:{name}12:piece lengthi16384e6:pieces20:",
        name.len()
    )
    .into_bytes();
    out.extend_from_slice(&[7u8; 20]);
    out.push(b'e');
    out
}

async fn read_exact_or_eof(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Serves `info` as the metadata of its hash to whoever connects.
async fn fake_seeder(info: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let info = info.clone();
            tokio::spawn(async move {
                let Some(hs) = read_exact_or_eof(&mut s, 68).await else {
                    return;
                };
                let mut reply = Vec::with_capacity(68);
                reply.push(19);
                reply.extend_from_slice(b"BitTorrent protocol");
                reply.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
                reply.extend_from_slice(&hs[28..48]);
                reply.extend_from_slice(b"-XX0001-hostilepeer!");
                let ext = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{}ee", info.len());
                let mut msg = ((2 + ext.len()) as u32).to_be_bytes().to_vec();
                msg.extend_from_slice(&[20, 0]);
                msg.extend_from_slice(ext.as_bytes());
                reply.extend_from_slice(&msg);
                if s.write_all(&reply).await.is_err() {
                    return;
                }
                let mut their_id = 2u8;
                loop {
                    let Some(len) = read_exact_or_eof(&mut s, 4).await else {
                        return;
                    };
                    let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
                    if len == 0 {
                        continue;
                    }
                    let Some(body) = read_exact_or_eof(&mut s, len).await else {
                        return;
                    };
                    if body[0] != 20 {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&body[2..]).into_owned();
                    if body[1] == 0 {
                        if let Some(pos) = text.find("11:ut_metadatai") {
                            let digits: String = text[pos + 15..]
                                .chars()
                                .take_while(|c| c.is_ascii_digit())
                                .collect();
                            their_id = digits.parse().unwrap_or(2);
                        }
                    } else if text.contains("8:msg_typei0e") {
                        let head =
                            format!("d8:msg_typei1e5:piecei0e10:total_sizei{}ee", info.len());
                        let mut msg = ((2 + head.len() + info.len()) as u32)
                            .to_be_bytes()
                            .to_vec();
                        msg.extend_from_slice(&[20, their_id]);
                        msg.extend_from_slice(head.as_bytes());
                        msg.extend_from_slice(&info);
                        if s.write_all(&msg).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

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
    let bob = Service::start(common::service_config(&server, "bob", &bob_dir, None))
        .await
        .unwrap();
    let mallory = Peer::login(&server, "mallory", "evil").await;
    let mut events = bob.events.subscribe();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot components", info_multi(&[&["..", "..", "escape"]])),
        ("an absolute name", info_single("/tmp/absolute-escape")),
        ("a NUL in a name", info_multi(&[&["ok", "nul\0byte"]])),
        ("a drive letter", info_multi(&[&["C:escape"]])),
    ];
    for (what, info) in cases {
        let hash = InfoHash(Sha1::digest(&info).into());
        let seeder = fake_seeder(info).await;
        mallory
            .xmpp
            .set_local(ResourceShares {
                shares: vec![Share {
                    hash,
                    name: ShareName::new("innocent.txt").unwrap(),
                    size: 10,
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
            reason.contains("nothing was written") || reason.contains("invalid"),
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
