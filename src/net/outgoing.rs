//! Our side of a peer connection: librqbit asks the proxy for a virtual
//! address, and this finds the contact resource behind it, checks the
//! torrent, and reaches it directly, punched or relayed (see `mod.rs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::signal::{new_sid, Mode, Request};
use super::socks::{self, Reply};
use super::{dial, pipe, punch, relay, Inner, Live, PathKind, PeerPath};
use crate::shares::InfoHash;

/// How long librqbit may take to send its handshake after the proxy said
/// yes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the direct attempts may take when nothing else can be tried.
const DIRECT_ONLY: Duration = Duration::from_secs(8);
/// How long the direct attempts may take before punching is tried.
const DIRECT_FIRST: Duration = Duration::from_secs(3);
/// How long punching is tried.
const PUNCH_WINDOW: Duration = Duration::from_secs(5);
/// How long a contact device may take to answer a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed direct attempt, how long it is skipped.
const SKIP_DIRECT: Duration = Duration::from_secs(600);

/// One connection from librqbit to the proxy.
pub(super) async fn serve(inner: Arc<Inner>, mut client: TcpStream, stop: CancellationToken) {
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
                    pipe::join(&mut client, &mut remote).await;
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
    if !inner.catalog.lists(&jid, &resource, &hash) {
        tracing::debug!(contact = %format!("{jid}/{resource}"), %hash, "refused a peer connection: the contact does not list this torrent");
        return;
    }
    let Some((mut remote, peer)) = reach(&inner, &jid, &resource, hash).await else {
        return;
    };
    inner.worked.lock().unwrap().insert(
        (jid.to_string(), resource.to_string()),
        (peer.path, Instant::now()),
    );
    if remote.write_all(&handshake).await.is_err() {
        return;
    }
    inner.note_success(&jid, &resource);
    tracing::debug!(contact = %peer.contact, address = %peer.address, path = ?peer.path, %hash, "connected");
    let relayed = peer.path == PathKind::Relayed;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    inner.live.lock().unwrap().insert(
        id,
        Live {
            virtual_addr: target,
            hash,
            peer,
        },
    );
    tokio::select! {
        _ = stop.cancelled() => {}
        // (librqbit's handshake went out above.)
        _ = async {
            if relayed {
                pipe::join_relayed(&mut client, &mut remote, 0).await
            } else {
                pipe::join(&mut client, &mut remote).await
            }
        } => {}
    }
    inner.live.lock().unwrap().remove(&id);
}

/// The first path to `jid/resource` that works, or none (the reasons are
/// noted for the diagnosis).
async fn reach(
    inner: &Arc<Inner>,
    jid: &str,
    resource: &str,
    hash: InfoHash,
) -> Option<(TcpStream, PeerPath)> {
    let who = format!("{jid}/{resource}");
    let key = (jid.to_string(), resource.to_string());
    let signal = inner.signal.get().cloned();
    let can_ask = match &signal {
        Some(s) => s.can_ask(jid, resource).await,
        None => false,
    };
    let peer = |address, path, via| PeerPath {
        contact: who.clone(),
        address,
        path,
        via,
    };
    let mut why = Vec::new();
    // What worked a moment ago is tried first (and what failed before it
    // is skipped): a relayed contact does not wait for direct and punched
    // attempts again for every connection.
    let recent = inner
        .worked
        .lock()
        .unwrap()
        .get(&key)
        .filter(|(_, at)| at.elapsed() < SKIP_DIRECT)
        .map(|(path, _)| *path);
    if let (Some(PathKind::Relayed), Some(s)) = (recent, signal.as_ref().filter(|_| can_ask)) {
        if inner.relay.load(Ordering::SeqCst) {
            match relayed(s.as_ref(), jid, resource, hash).await {
                Ok((stream, address, via)) => {
                    return Some((stream, peer(address, PathKind::Relayed, Some(via))))
                }
                Err(e) => why.push(format!("relayed again: {e}")),
            }
        }
    }

    // Direct, unless it failed a moment ago and something else can be tried.
    let published = inner
        .catalog
        .online_addresses(jid, resource)
        .unwrap_or_default();
    let candidates = dial::order(&published, inner.allow_loopback);
    let skip_direct = can_ask
        && inner
            .direct_failed
            .lock()
            .unwrap()
            .get(&key)
            .is_some_and(|t| t.elapsed() < SKIP_DIRECT);
    if candidates.is_empty() {
        why.push("it published no address we can dial".to_string());
    } else if skip_direct {
        why.push("direct failed a moment ago".to_string());
    } else {
        let budget = if can_ask { DIRECT_FIRST } else { DIRECT_ONLY };
        match dial::first_connect(&candidates, budget).await {
            Ok((stream, address)) => {
                inner.direct_failed.lock().unwrap().remove(&key);
                return Some((stream, peer(address, PathKind::Direct, None)));
            }
            Err(e) => {
                inner
                    .direct_failed
                    .lock()
                    .unwrap()
                    .insert(key, Instant::now());
                why.push(format!("direct: {e}"));
            }
        }
    }
    let Some(signal) = signal.filter(|_| can_ask) else {
        why.push(
            "its app cannot be asked to punch or relay (an older Bitween or the original)".into(),
        );
        inner.note_failure(jid, resource, why.join("; "));
        return None;
    };

    // Punched.
    match punched(inner, signal.as_ref(), jid, resource, hash).await {
        Ok((stream, address)) => return Some((stream, peer(address, PathKind::Punched, None))),
        Err(e) => why.push(format!("punched: {e}")),
    }

    // Relayed.
    if !inner.relay.load(Ordering::SeqCst) {
        why.push("relaying is off".into());
    } else {
        match relayed(signal.as_ref(), jid, resource, hash).await {
            Ok((stream, address, via)) => {
                return Some((stream, peer(address, PathKind::Relayed, Some(via))))
            }
            Err(e) => why.push(format!("relayed: {e}")),
        }
    }
    inner.note_failure(jid, resource, why.join("; "));
    None
}

/// Asks for a punched connection and dials the answer's candidates.
async fn punched(
    inner: &Inner,
    signal: &dyn super::Signal,
    jid: &str,
    resource: &str,
    hash: InfoHash,
) -> Result<(TcpStream, SocketAddr), String> {
    let port = punch::free_port(false).map_err(|e| format!("no local port: {e}"))?;
    let port6 = punch::free_port(true).ok();
    let candidates = inner.punch_candidates(port, port6);
    if candidates.is_empty() {
        return Err("we publish no address to punch from".into());
    }
    let req = Request {
        sid: new_sid(),
        hash,
        mode: Mode::Punch,
        candidates,
    };
    let accept = tokio::time::timeout(ANSWER_TIMEOUT, signal.ask(jid, resource, req))
        .await
        .map_err(|_| "the contact did not answer".to_string())??;
    let theirs = dial::order(&accept.candidates, inner.allow_loopback);
    punch::punch(Some(port), port6, &theirs, PUNCH_WINDOW).await
}

/// Asks for a relayed connection, checks the relay the answer names, joins
/// the stream and has the relay activate it.
async fn relayed(
    signal: &dyn super::Signal,
    jid: &str,
    resource: &str,
    hash: InfoHash,
) -> Result<(TcpStream, SocketAddr, String), String> {
    let own = signal
        .own_full_jid()
        .ok_or_else(|| "we are offline".to_string())?;
    let req = Request {
        sid: new_sid(),
        hash,
        mode: Mode::Relay,
        candidates: vec![],
    };
    let sid = req.sid.clone();
    let accept = tokio::time::timeout(ANSWER_TIMEOUT, signal.ask(jid, resource, req))
        .await
        .map_err(|_| "the contact did not answer".to_string())??;
    let proxy = accept
        .proxy
        .ok_or_else(|| "the contact named no relay".to_string())?;
    // Only a relay of the contact's server (or ours), at the address the
    // relay itself gives: never an address the contact chose.
    let their_domain = jid.rsplit_once('@').map_or(jid, |(_, d)| d);
    let own_domain = own
        .split_once('/')
        .map_or(own.as_str(), |(b, _)| b)
        .rsplit_once('@')
        .map_or("", |(_, d)| d);
    let ok_domain = |d: &str| proxy.jid == d || proxy.jid.ends_with(&format!(".{d}"));
    if !ok_domain(their_domain) && !ok_domain(own_domain) {
        return Err(format!(
            "the relay {} is not a service of {their_domain} or {own_domain}",
            proxy.jid
        ));
    }
    let address = signal.streamhost(&proxy.jid).await?;
    let target = format!("{jid}/{resource}");
    let name = relay::stream_name(&sid, &own, &target);
    let stream = relay::connect(address, &name).await?;
    signal.activate(&proxy.jid, &sid, &target).await?;
    Ok((stream, address, proxy.jid))
}
