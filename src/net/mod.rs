//! The one place that owns peer connections (the path layer).
//!
//! librqbit sends every outgoing peer connection, and its tracker requests,
//! through a SOCKS5 proxy when one is set: this module is that proxy, on
//! 127.0.0.1 with a random username and password. librqbit never learns a
//! contact's real address. It is handed one *virtual* address per online
//! contact resource (`127.128.0.0/9`, derived from the contact and resource
//! with a key of this session), from which this layer (`outgoing.rs`):
//!
//! 1. refuses anything that is not such an address of a contact resource
//!    online now (so peer exchange, a hostile tracker answer or any other
//!    address a peer hands librqbit never makes us connect anywhere);
//! 2. reads librqbit's BitTorrent handshake and refuses unless that contact
//!    resource lists the info hash it names;
//! 3. reaches the resource by the first path that works, and splices:
//!    **direct** to the addresses it publishes (IPv6 first, loopback only
//!    when our own server is on loopback); **punched**, both sides dialing
//!    each other at once (`punch.rs`), agreed over XMPP (`signal.rs`);
//!    **relayed** through the XEP-0065 proxy of the contact's server
//!    (`relay.rs`), when relaying is on.
//!
//! The other side of punched and relayed connections (`incoming.rs`)
//! answers a contact's request. What it gets, and every direct connection
//! to our listener on the public BitTorrent port, is spliced into
//! librqbit's own listener on loopback once the peer's handshake named a
//! torrent we serve (an idle share is loaded for it first: `splice.rs`).
//! Every connection's path is remembered for the UI, the CLI and the API.
//!
//! Peer exchange leaks nothing either: what librqbit passes on are the
//! virtual addresses and the loopback ends of spliced connections, which
//! mean nothing anywhere else (every peer it knows is on loopback to it, so
//! it may send them to any peer).
//!
//! Not here: sending the signalling over XMPP (the [`Signal`] the XMPP
//! session provides), choosing which torrents to download (`torrent`).

mod dial;
mod incoming;
mod outgoing;
mod pipe;
pub mod punch;
pub mod relay;
pub mod signal;
pub mod socks;
mod splice;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use crate::events::PathKind;
use crate::shares::{Catalog, InfoHash};
pub use signal::{Accept, Proxy, Request};

/// A live connection, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerPath {
    /// `contact/resource`.
    pub contact: String,
    /// The address connected to (direct, punched) or the relay's.
    pub address: SocketAddr,
    pub path: PathKind,
    /// The relay's JID, for a relayed connection.
    pub via: Option<String>,
}

/// What the path layer needs from the XMPP session: asking a contact's
/// device, and the relays of the servers.
pub trait Signal: Send + Sync {
    /// Whether `jid/resource` advertises the path signalling.
    fn can_ask<'a>(&'a self, jid: &'a str, resource: &'a str) -> BoxFuture<'a, bool>;
    /// Sends `req` to `jid/resource` and waits for its answer.
    fn ask<'a>(
        &'a self,
        jid: &'a str,
        resource: &'a str,
        req: Request,
    ) -> BoxFuture<'a, Result<Accept, String>>;
    /// The relay of our own server, if it has one.
    fn own_relay(&self) -> BoxFuture<'_, Option<Proxy>>;
    /// Where the relay `proxy_jid` takes streams, as the relay says.
    fn streamhost<'a>(&'a self, proxy_jid: &'a str) -> BoxFuture<'a, Result<SocketAddr, String>>;
    /// Asks the relay to join the stream `sid` of ours with `target`'s.
    fn activate<'a>(
        &'a self,
        proxy_jid: &'a str,
        sid: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Our full JID while online.
    fn own_full_jid(&self) -> Option<String>;
}

/// Whether we serve a torrent (a share, or a download under way).
pub type Serving = Arc<dyn Fn(&InfoHash) -> bool + Send + Sync>;

/// Whether the contact (bare JID) may have the torrent: its share's
/// audience admits them (`crate::restricted`).
pub type MaySee = Arc<dyn Fn(&str, &InfoHash) -> bool + Send + Sync>;

/// Makes a torrent we serve live in librqbit (an idle share is loaded);
/// true once it is.
pub type Wake = Arc<dyn Fn(InfoHash) -> BoxFuture<'static, bool> + Send + Sync>;

/// A live connection of ours, under the virtual address librqbit used.
struct Live {
    virtual_addr: SocketAddr,
    hash: InfoHash,
    peer: PeerPath,
}

/// The most path requests one contact may make per minute.
const REQUESTS_PER_MINUTE: usize = 30;

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
    /// Punched and relayed connections spliced into our listener, by the
    /// address librqbit sees them come from.
    spliced: Mutex<HashMap<SocketAddr, PeerPath>>,
    next_id: AtomicU64,
    signal: OnceLock<Arc<dyn Signal>>,
    /// Direct connections to our listener spliced into librqbit's, by the
    /// address librqbit sees them come from: the peer's real address.
    direct_in: Mutex<HashMap<SocketAddr, SocketAddr>>,
    serving: OnceLock<Serving>,
    may_see: OnceLock<MaySee>,
    wake: OnceLock<Wake>,
    /// librqbit's listener (on loopback), where incoming streams are spliced.
    listener: OnceLock<u16>,
    /// Our published addresses (the candidates we offer for punching).
    own_ips: Mutex<Vec<IpAddr>>,
    relay: AtomicBool,
    /// When the direct attempt to a contact resource last failed (it is
    /// skipped for a while).
    direct_failed: Mutex<HashMap<(String, String), Instant>>,
    /// The path that last worked to a contact resource, and when: tried
    /// first next time (a torrent's metadata and its pieces come over two
    /// connections; the second should not wait for what failed before).
    worked: Mutex<HashMap<(String, String), (PathKind, Instant)>>,
    /// Why the last connection to a contact resource failed.
    failures: Mutex<HashMap<(String, String), String>>,
    /// Path requests per contact in the last minute.
    requests: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// The path layer's handle; cheap to clone.
#[derive(Clone)]
pub struct PeerPaths {
    inner: Arc<Inner>,
}

/// Accepts connections on `listener` until `stop` (or until `inner` is
/// gone), and serves each in a task of its own: `serve(inner, stream,
/// from)`. A failed accept (out of file descriptors and the like) waits a
/// moment instead of spinning.
fn accept_loop<F, Fut>(
    inner: &Arc<Inner>,
    listener: TcpListener,
    stop: CancellationToken,
    span: tracing::Span,
    serve: F,
) where
    F: Fn(Arc<Inner>, TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let weak = Arc::downgrade(inner);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            loop {
                let conn = tokio::select! {
                    _ = stop.cancelled() => break,
                    c = listener.accept() => c,
                };
                let (stream, from) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(inner) = weak.upgrade() else { break };
                let from = SocketAddr::new(from.ip().to_canonical(), from.port());
                tokio::spawn(serve(inner, stream, from));
            }
        },
        span,
    ));
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
            spliced: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            signal: OnceLock::new(),
            direct_in: Mutex::new(HashMap::new()),
            serving: OnceLock::new(),
            may_see: OnceLock::new(),
            wake: OnceLock::new(),
            listener: OnceLock::new(),
            own_ips: Mutex::new(Vec::new()),
            relay: AtomicBool::new(true),
            direct_failed: Mutex::new(HashMap::new()),
            worked: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
        });
        let child = stop.clone();
        accept_loop(
            &inner,
            listener,
            stop,
            tracing::debug_span!("peer-paths"),
            move |inner, stream, _| outgoing::serve(inner, stream, child.child_token()),
        );
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

    /// The XMPP side that carries our path requests and answers.
    pub fn set_signal(&self, signal: Arc<dyn Signal>) {
        let _ = self.inner.signal.set(signal);
    }

    /// Who may ask for which torrent over the paths we answer (signalled
    /// and relayed connections); until set, everyone may.
    pub fn set_may_see(&self, may_see: MaySee) {
        let _ = self.inner.may_see.set(may_see);
    }

    /// Which torrents we serve, how one is made live, and the port of
    /// librqbit's own listener on 127.0.0.1.
    pub fn set_engine(&self, serving: Serving, wake: Wake, librqbit_port: u16) {
        let _ = self.inner.serving.set(serving);
        let _ = self.inner.wake.set(wake);
        let _ = self.inner.listener.set(librqbit_port);
    }

    /// Takes the peers that connect to `listener` (the public BitTorrent
    /// port) until `stop`: each is handed to librqbit once its handshake
    /// named a torrent we serve (see `splice.rs`).
    pub fn serve_listener(&self, listener: TcpListener, stop: CancellationToken) {
        splice::serve_listener(self.inner.clone(), listener, stop);
    }

    /// The real address of a peer that librqbit sees as `seen` (a direct
    /// connection spliced in from our listener).
    pub fn origin(&self, seen: SocketAddr) -> Option<SocketAddr> {
        let seen = SocketAddr::new(seen.ip().to_canonical(), seen.port());
        self.inner.direct_in.lock().unwrap().get(&seen).copied()
    }

    /// Our published addresses (offered as candidates for punching).
    pub fn set_own_addresses(&self, ips: Vec<IpAddr>) {
        *self.inner.own_ips.lock().unwrap() = ips;
    }

    /// Whether relayed connections are made and accepted.
    pub fn set_relay(&self, enabled: bool) {
        self.inner.relay.store(enabled, Ordering::SeqCst);
    }

    /// The peers librqbit gets for `hash`: one virtual address per online
    /// contact resource that lists it and that we may reach: one that
    /// published an address we may dial, or that can be asked for a
    /// punched or relayed connection.
    pub fn peers_for(&self, hash: &InfoHash) -> Vec<SocketAddr> {
        let catalog = &self.inner.catalog;
        let mut out: Vec<SocketAddr> = catalog
            .online_holders(hash)
            .into_iter()
            .filter(|(jid, resource)| {
                self.inner.signal.get().is_some()
                    || catalog
                        .online_addresses(jid, resource)
                        .is_some_and(|a| !dial::order(&a, self.inner.allow_loopback).is_empty())
            })
            .map(|(jid, resource)| self.inner.virtual_addr(&jid, &resource))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Who a peer of a torrent is and how it was reached, if the path
    /// layer made the connection (ours under a virtual address, or one it
    /// spliced into our listener).
    pub fn describe(&self, hash: &InfoHash, peer: SocketAddr) -> Option<PeerPath> {
        // (librqbit's dual-stack listener may see 127.0.0.1 as ::ffff:…)
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if let Some(p) = self.inner.spliced.lock().unwrap().get(&peer) {
            return Some(p.clone());
        }
        let live = self.inner.live.lock().unwrap();
        live.values()
            .find(|l| l.virtual_addr == peer && l.hash == *hash)
            .map(|l| l.peer.clone())
    }

    /// Why the last connection to `jid/resource` failed, if it did.
    pub fn last_failure(&self, jid: &str, resource: &str) -> Option<String> {
        let key = (jid.to_string(), resource.to_string());
        self.inner.failures.lock().unwrap().get(&key).cloned()
    }

    /// Answers a contact device's path request (`from`: its full JID).
    pub async fn answer(&self, from: &str, req: Request) -> Result<Accept, String> {
        incoming::answer(&self.inner, from, req).await
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

    fn note_failure(&self, jid: &str, resource: &str, why: String) {
        tracing::info!(contact = %format!("{jid}/{resource}"), "no path: {why}");
        self.failures
            .lock()
            .unwrap()
            .insert((jid.to_string(), resource.to_string()), why);
    }

    fn note_success(&self, jid: &str, resource: &str) {
        self.failures
            .lock()
            .unwrap()
            .remove(&(jid.to_string(), resource.to_string()));
    }

    /// Our addresses to offer for punching, each with the port for its
    /// family.
    fn punch_candidates(&self, port: u16, port6: Option<u16>) -> Vec<SocketAddr> {
        self.own_ips
            .lock()
            .unwrap()
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(_) => Some(SocketAddr::new(*ip, port)),
                IpAddr::V6(_) => port6.map(|p| SocketAddr::new(*ip, p)),
            })
            .collect()
    }

    /// Whether `jid` may make one more request now.
    fn allow_request(&self, jid: &str) -> bool {
        let mut requests = self.requests.lock().unwrap();
        let recent = requests.entry(jid.to_string()).or_default();
        let minute_ago = Instant::now() - Duration::from_secs(60);
        while recent.front().is_some_and(|t| *t < minute_ago) {
            recent.pop_front();
        }
        if recent.len() >= REQUESTS_PER_MINUTE {
            return false;
        }
        recent.push_back(Instant::now());
        true
    }
}
