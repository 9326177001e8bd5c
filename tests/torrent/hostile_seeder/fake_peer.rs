//! A tiny fake BitTorrent peer that serves whatever metadata a test makes
//! (BEP 9 over BEP 10), and the bencoded info dictionaries it serves.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bencoded info dictionary (keys in sorted order) with one piece.
pub fn info_multi(paths: &[&[&str]]) -> Vec<u8> {
    let mut files = String::new();
    for p in paths {
        let parts: String = p.iter().map(|c| format!("{}:{c}", c.len())).collect();
        files += &format!("d6:lengthi10e4:pathl{parts}ee");
    }
    let pieces = (paths.len() * 10).div_ceil(16384);
    let mut out = format!(
        "d5:filesl{files}e4:name4:evil12:piece lengthi16384e6:pieces{}:",
        pieces * 20
    )
    .into_bytes();
    out.extend(std::iter::repeat_n(7u8, pieces * 20));
    out.push(b'e');
    out
}

pub fn info_single(name: &str) -> Vec<u8> {
    info_sized(name, 10, 16384)
}

/// A single-file info dictionary of `length` bytes in pieces of
/// `piece_length` (hashes all the same: nothing is ever downloaded).
pub fn info_sized(name: &str, length: u64, piece_length: u64) -> Vec<u8> {
    let pieces = length.div_ceil(piece_length) as usize;
    let mut out = format!(
        "d6:lengthi{length}e4:name{}:{name}12:piece lengthi{piece_length}e6:pieces{}:",
        name.len(),
        pieces * 20
    )
    .into_bytes();
    out.extend(std::iter::repeat_n(7u8, pieces * 20));
    out.push(b'e');
    out
}

async fn read_exact_or_eof(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Serves `info` as the metadata of its hash to whoever connects.
pub async fn fake_seeder(info: Vec<u8>) -> SocketAddr {
    fake_peer(info, None).await
}

/// [`fake_seeder`] that also hands every peer `pex` through peer exchange
/// (BEP 11) as soon as the peer's extended handshake arrives.
pub async fn fake_peer(info: Vec<u8>, pex: Option<SocketAddr>) -> SocketAddr {
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
                let ext = format!(
                    "d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei{}ee",
                    info.len()
                );
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
                        let pex_id = text.find("6:ut_pexi").and_then(|pos| {
                            text[pos + 9..]
                                .split('e')
                                .next()
                                .and_then(|d| d.parse::<u8>().ok())
                        });
                        if let (Some(SocketAddr::V4(to)), Some(pex_id)) = (pex, pex_id) {
                            let mut compact = to.ip().octets().to_vec();
                            compact.extend_from_slice(&to.port().to_be_bytes());
                            let mut payload = b"d5:added6:".to_vec();
                            payload.extend_from_slice(&compact);
                            payload.extend_from_slice(b"7:added.f1:\x00e");
                            let mut msg = ((2 + payload.len()) as u32).to_be_bytes().to_vec();
                            msg.extend_from_slice(&[20, pex_id]);
                            msg.extend_from_slice(&payload);
                            if s.write_all(&msg).await.is_err() {
                                return;
                            }
                        }
                    } else if text.contains("8:msg_typei0e") {
                        // BEP 9: the metadata in pieces of 16 KiB.
                        let piece: usize = text
                            .split("5:piecei")
                            .nth(1)
                            .and_then(|t| t.split('e').next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        let start = (piece * 16384).min(info.len());
                        let part = &info[start..(start + 16384).min(info.len())];
                        let head = format!(
                            "d8:msg_typei1e5:piecei{piece}e10:total_sizei{}ee",
                            info.len()
                        );
                        let mut msg = ((2 + head.len() + part.len()) as u32)
                            .to_be_bytes()
                            .to_vec();
                        msg.extend_from_slice(&[20, their_id]);
                        msg.extend_from_slice(head.as_bytes());
                        msg.extend_from_slice(part);
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
