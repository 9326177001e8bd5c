//! A BitTorrent tracker on 127.0.0.1 inside the app that answers announces
//! from the contacts' catalog (as the path layer's virtual addresses).
//!
//! Why: librqbit 9.1 has no public call to add a peer to a running torrent,
//! and `initial_peers` are fixed when a torrent is added. Every torrent of
//! ours lists this tracker and re-announces every few seconds, so sources
//! that appear later (a contact who just downloaded the file, a device that
//! came online) join running downloads and seeds without removing and
//! re-adding anything, and without a fork of librqbit. The tracker hands out
//! one address per online contact resource that lists the info hash (see
//! `crate::net`: librqbit reaches them through the path layer). It listens on
//! loopback behind a random path, so other local programs cannot read the
//! catalog through it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::net::PeerPaths;
use crate::shares::InfoHash;

/// How often torrents re-announce to the local tracker.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(3);

/// The running tracker.
#[derive(Debug, Clone)]
pub struct LocalTracker {
    url: String,
    addr: SocketAddr,
}

impl LocalTracker {
    /// Binds 127.0.0.1 on a free port and serves until `stop` is cancelled.
    pub async fn start(paths: PeerPaths, stop: CancellationToken) -> std::io::Result<LocalTracker> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let secret: u64 = rand::random();
        let path = format!("/{secret:016x}/announce");
        let url = format!("http://{addr}{path}");
        let app = Router::new().route(&path, get(announce)).with_state(paths);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::warn!("the local tracker stopped: {e}");
                }
            },
            tracing::debug_span!("local-tracker"),
        ));
        Ok(LocalTracker { url, addr })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it listens (librqbit reaches it through the path layer).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One announce: the torrent's sources from the catalog, in compact form
/// (a failure reason when the request names no torrent).
async fn announce(State(paths): State<PeerPaths>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let body = match query.as_deref().and_then(info_hash_param) {
        Some(hash) => announce_response(&paths.peers_for(&hash)),
        None => failure("missing or malformed info_hash"),
    };
    ([(header::CONTENT_TYPE, "text/plain")], body)
}

/// The raw 20 bytes of the `info_hash` query parameter (percent-encoded).
fn info_hash_param(query: &str) -> Option<InfoHash> {
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("info_hash="))?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
    Some(InfoHash(bytes.try_into().ok()?))
}

/// A bencoded announce answer with compact IPv4 and IPv6 peer lists.
fn announce_response(peers: &[SocketAddr]) -> Vec<u8> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in peers {
        match p.ip() {
            IpAddr::V4(ip) => {
                v4.extend_from_slice(&ip.octets());
                v4.extend_from_slice(&p.port().to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v6.extend_from_slice(&ip.octets());
                v6.extend_from_slice(&p.port().to_be_bytes());
            }
        }
    }
    let secs = ANNOUNCE_INTERVAL.as_secs();
    let mut out = format!(
        "d8:completei0e10:incompletei0e8:intervali{secs}e12:min intervali{secs}e5:peers{}:",
        v4.len()
    )
    .into_bytes();
    out.extend_from_slice(&v4);
    out.extend_from_slice(format!("6:peers6{}:", v6.len()).as_bytes());
    out.extend_from_slice(&v6);
    out.push(b'e');
    out
}

fn failure(reason: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_info_hash_parameter() {
        let q = "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&peer_id=x&port=1";
        let h = info_hash_param(q).unwrap();
        assert_eq!(h.to_hex(), "123456789abcdef123456789abcdef123456789a");
        assert!(info_hash_param("info_hash=%12").is_none());
        assert!(info_hash_param("peer_id=x").is_none());
    }

    #[test]
    fn answers_in_compact_form() {
        let r = announce_response(&[
            "10.0.0.1:6881".parse().unwrap(),
            "[::1]:80".parse().unwrap(),
        ]);
        let mut expected =
            b"d8:completei0e10:incompletei0e8:intervali3e12:min intervali3e5:peers6:".to_vec();
        expected.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
        expected.extend_from_slice(b"6:peers618:");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80]);
        expected.push(b'e');
        assert_eq!(r, expected);
    }
}
