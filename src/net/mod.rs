//! The one place that owns outgoing peer connections (the path layer).
//!
//! librqbit sends every outgoing peer connection, and its tracker requests,
//! through a SOCKS5 proxy when one is set: this module is that proxy, on
//! 127.0.0.1 with a random username and password. librqbit never learns a
//! contact's real address. It is handed one *virtual* address per online
//! contact resource (`127.128.0.0/9`, derived from the contact and resource
//! with a key of this session), from which this layer:
//!
//! 1. refuses anything that is not such an address of a contact resource
//!    online now (so peer exchange, a hostile tracker answer or any other
//!    address a peer hands librqbit never makes us connect anywhere);
//! 2. reads librqbit's BitTorrent handshake and refuses unless that contact
//!    resource lists the info hash it names;
//! 3. connects to the addresses the resource publishes (IPv6 first,
//!    loopback only when our own server is on loopback) and splices the
//!    two, remembering the path for the UI, the CLI and the API.
//!
//! Peer exchange leaks nothing either: what librqbit passes on are the
//! virtual addresses, which mean nothing anywhere else (and which librqbit
//! only sends to peers on the same machine or network: loopback).
//!
//! Not here: incoming connections (librqbit's own listener), choosing which
//! torrents to download (`torrent`).

mod dial;
pub mod punch;
pub mod relay;
pub mod signal;
pub mod socks;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use crate::events::PathKind;
use crate::shares::{Catalog, InfoHash};
use socks::Reply;

/// How long librqbit may take to send its handshake after the proxy said
/// yes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the direct attempts to one contact resource may take in all
/// (librqbit waits 10 s for the remote handshake).
const DIAL_BUDGET: Duration = Duration::from_secs(8);
/// Bytes copied at a time each way once connected.
const SPLICE_BUFFER: usize = 256 * 1024;

/// A live outgoing connection, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerPath {
    /// `contact/resource`.
    pub contact: String,
    /// The real address connected to.
    pub address: SocketAddr,
    pub path: PathKind,
}

struct Live {
    virtual_addr: SocketAddr,
    hash: InfoHash,
    peer: PeerPath,
}

struct Inner {
    catalog: Catalog,
    keys: std::collections::hash_map::RandomState,
    allow_loopback: bool,
    proxy: SocketAddr,
    user: String,
    password: String,
    /// Addresses connected to as they are (our local tracker).
    passthrough: Mutex<Vec<SocketAddr>>,
    live: Mutex<HashMap<u64, Live>>,
    next_id: AtomicU64,
}

/// The path layer's handle; cheap to clone.
#[derive(Clone)]
pub struct PeerPaths {
    inner: Arc<Inner>,
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl PeerPaths {
    /// Starts the proxy on 127.0.0.1; it serves until `stop`.
    /// `allow_loopback`: contacts' loopback addresses may be dialed (only
    /// when our own XMPP server is on this machine).
    pub async fn start(
        catalog: Catalog,
        allow_loopback: bool,
        stop: CancellationToken,
    ) -> std::io::Result<PeerPaths> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let inner = Arc::new(Inner {
            catalog,
            keys: std::collections::hash_map::RandomState::new(),
            allow_loopback,
            proxy: listener.local_addr()?,
            user: random_token(),
            password: random_token(),
            passthrough: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let serving = Arc::downgrade(&inner);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    let conn = tokio::select! {
                        _ = stop.cancelled() => break,
                        c = listener.accept() => c,
                    };
                    let Ok((stream, _)) = conn else { continue };
                    let Some(inner) = serving.upgrade() else {
                        break;
                    };
                    tokio::spawn(serve(inner, stream, stop.child_token()));
                }
            },
            tracing::debug_span!("peer-paths"),
        ));
        Ok(PeerPaths { inner })
    }

    /// The proxy URL for librqbit's `ConnectionOptions`.
    pub fn proxy_url(&self) -> String {
        let i = &self.inner;
        format!("socks5://{}:{}@{}", i.user, i.password, i.proxy)
    }

    /// Lets connections to `addr` through as they are (our own local
    /// tracker, which librqbit also reaches through the proxy).
    pub fn allow_passthrough(&self, addr: SocketAddr) {
        self.inner.passthrough.lock().unwrap().push(addr);
    }

    /// The peers librqbit gets for `hash`: one virtual address per online
    /// contact resource that lists it and published an address we may dial.
    pub fn peers_for(&self, hash: &InfoHash) -> Vec<SocketAddr> {
        let catalog = &self.inner.catalog;
        let mut out: Vec<SocketAddr> = catalog
            .online_holders(hash)
            .into_iter()
            .filter(|(jid, resource)| {
                catalog
                    .online_addresses(jid, resource)
                    .is_some_and(|a| !dial::order(&a, self.inner.allow_loopback).is_empty())
            })
            .map(|(jid, resource)| self.inner.virtual_addr(&jid, &resource))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Who a peer address of a torrent is, and how we reached it, for an
    /// outgoing connection of ours.
    pub fn describe(&self, hash: &InfoHash, peer: SocketAddr) -> Option<PeerPath> {
        let live = self.inner.live.lock().unwrap();
        live.values()
            .find(|l| l.virtual_addr == peer && l.hash == *hash)
            .map(|l| l.peer.clone())
    }
}

impl Inner {
    /// The virtual address of a contact resource: 127.128.0.0/9 and a port
    /// from a keyed hash, so no contact can pick a name that collides with
    /// another's.
    fn virtual_addr(&self, jid: &str, resource: &str) -> SocketAddr {
        let h = self.keys.hash_one((jid, resource));
        let b = h.to_be_bytes();
        let ip = Ipv4Addr::new(127, 0x80 | (b[0] & 0x7f), b[1], b[2]);
        let port = 1024 + (u16::from_be_bytes([b[3], b[4]]) % (u16::MAX - 1024));
        SocketAddr::new(ip.into(), port)
    }

    /// The online contact resource behind a virtual address.
    fn resolve(&self, target: SocketAddr) -> Option<(String, String)> {
        self.catalog
            .online_resources()
            .into_iter()
            .find(|(jid, resource)| self.virtual_addr(jid, resource) == target)
    }
}

/// One connection from librqbit to the proxy.
async fn serve(inner: Arc<Inner>, mut client: TcpStream, stop: CancellationToken) {
    let target = match socks::accept(&mut client, &inner.user, &inner.password).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!("a proxy client was turned away: {e}");
            return;
        }
    };
    if inner.passthrough.lock().unwrap().contains(&target) {
        match TcpStream::connect(target).await {
            Ok(mut remote) => {
                if socks::reply(&mut client, Reply::Succeeded).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut remote).await;
                }
            }
            Err(_) => {
                let _ = socks::reply(&mut client, Reply::HostUnreachable).await;
            }
        }
        return;
    }
    let Some((jid, resource)) = inner.resolve(target) else {
        tracing::debug!(%target, "refused a peer connection: not an address of a contact online now");
        let _ = socks::reply(&mut client, Reply::NotAllowed).await;
        return;
    };
    // Said yes before connecting: which torrent librqbit wants is in the
    // handshake it sends next, and decides whether we connect at all.
    if socks::reply(&mut client, Reply::Succeeded).await.is_err() {
        return;
    }
    let mut handshake = [0u8; 68];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, client.read_exact(&mut handshake)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    if handshake[0] != 19 || &handshake[1..20] != b"BitTorrent protocol" {
        tracing::debug!("refused a peer connection: not a BitTorrent handshake");
        return;
    }
    let hash = InfoHash(handshake[28..48].try_into().expect("20 bytes"));
    let who = format!("{jid}/{resource}");
    if !inner.catalog.lists(&jid, &resource, &hash) {
        tracing::debug!(contact = %who, %hash, "refused a peer connection: the contact does not list this torrent");
        return;
    }
    let published = inner
        .catalog
        .online_addresses(&jid, &resource)
        .unwrap_or_default();
    let candidates = dial::order(&published, inner.allow_loopback);
    let (mut remote, address) = match dial::first_connect(&candidates, DIAL_BUDGET).await {
        Ok(c) => c,
        Err(why) => {
            tracing::debug!(contact = %who, %hash, "cannot reach the contact directly: {why}");
            return;
        }
    };
    if remote.write_all(&handshake).await.is_err() {
        return;
    }
    tracing::debug!(contact = %who, %address, %hash, "connected directly");
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    inner.live.lock().unwrap().insert(
        id,
        Live {
            virtual_addr: target,
            hash,
            peer: PeerPath {
                contact: who,
                address,
                path: PathKind::Direct,
            },
        },
    );
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut remote, SPLICE_BUFFER, SPLICE_BUFFER) => {}
    }
    inner.live.lock().unwrap().remove(&id);
}
