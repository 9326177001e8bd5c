//! Every incoming peer connection's way into librqbit: direct ones from our
//! listener on the public BitTorrent port (TCP), punched and relayed ones
//! from `incoming.rs`.
//!
//! librqbit's own listener is on loopback. Before a connection is handed
//! to it, the start of the peer's BitTorrent handshake is read (up to and
//! including the info hash it names): a torrent we do not serve is refused
//! here, and an own share that is idle (not loaded into librqbit, see
//! `torrent`) is loaded first, so librqbit finds it live. The bytes read are
//! then written to librqbit first and the rest is spliced both ways.
//!
//! librqbit sees every incoming peer come from loopback; the path layer
//! remembers the real address (direct) or the contact and path (punched,
//! relayed) by the local address of the loopback connection, for the UI.
//!
//! Incoming uTP is not taken: Bitween's own downloaders connect over TCP
//! (through the path layer), and libtorrent-based clients fall back to TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{pipe, Inner, PathKind, PeerPath};
use crate::shares::InfoHash;

/// How long a peer may take to send the start of its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle share may take to be loaded before the peer that
/// wants it is turned away (it will try again).
const WAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The handshake up to the end of its info hash: the protocol name's
/// length (19), "BitTorrent protocol", 8 reserved bytes, the hash.
const HANDSHAKE_HEAD: usize = 1 + 19 + 8 + 20;
/// The whole handshake: its head and the peer id.
const HANDSHAKE: usize = HANDSHAKE_HEAD + 20;
const PROTOCOL: &[u8] = b"BitTorrent protocol";

/// Where a connection came from, for the UI.
pub(super) enum Origin {
    /// Straight to our listener, from this address.
    Direct(SocketAddr),
    /// Punched or relayed, from this contact.
    Path(PeerPath),
}

/// Serves our listener on the public BitTorrent port until `stop`.
pub(super) fn serve_listener(inner: Arc<Inner>, listener: TcpListener, stop: CancellationToken) {
    let each = stop.clone();
    super::accept_loop(
        &inner,
        listener,
        stop,
        tracing::debug_span!("bt-listener"),
        move |inner, stream, from| {
            let stop = each.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = deliver(&inner, stream, Origin::Direct(from)) => {}
                }
            }
        },
    );
}

/// Reads the head of the handshake; the info hash it names.
async fn read_head(stream: &mut TcpStream) -> Result<([u8; HANDSHAKE_HEAD], InfoHash), String> {
    let mut head = [0u8; HANDSHAKE_HEAD];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut head))
        .await
        .map_err(|_| "no handshake in time".to_string())?
        .map_err(|e| format!("no handshake: {e}"))?;
    if head[0] as usize != PROTOCOL.len() || &head[1..20] != PROTOCOL {
        return Err("not a BitTorrent handshake".into());
    }
    let mut hash = [0u8; 20];
    hash.copy_from_slice(&head[28..48]);
    Ok((head, InfoHash(hash)))
}

/// Hands `stream` to librqbit's listener as an incoming peer once it named
/// a torrent we serve (loaded first if it was idle), and remembers where it
/// came from while it lasts.
pub(super) async fn deliver(inner: &Inner, mut stream: TcpStream, origin: Origin) {
    let (head, hash) = match read_head(&mut stream).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!("an incoming peer was turned away: {e}");
            return;
        }
    };
    let (Some(serving), Some(wake), Some(&port)) =
        (inner.serving.get(), inner.wake.get(), inner.listener.get())
    else {
        return;
    };
    if !serving(&hash) {
        tracing::debug!(%hash, "an incoming peer asked for a torrent we do not serve");
        return;
    }
    match tokio::time::timeout(WAKE_TIMEOUT, wake(hash)).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracing::info!(%hash, "the share took too long to load; the peer will try again");
            return;
        }
    }
    let Ok(mut local) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let Ok(seen_as) = local.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let _ = local.set_nodelay(true);
    if local.write_all(&head).await.is_err() {
        return;
    }
    match &origin {
        Origin::Direct(from) => {
            inner.direct_in.lock().unwrap().insert(seen_as, *from);
        }
        Origin::Path(path) => {
            tracing::debug!(contact = %path.contact, path = ?path.path, "spliced into our listener");
            inner.spliced.lock().unwrap().insert(seen_as, path.clone());
        }
    }
    match &origin {
        // (librqbit's whole handshake goes out from here.)
        Origin::Path(p) if p.path == PathKind::Relayed => {
            pipe::join_relayed(&mut local, &mut stream, HANDSHAKE).await
        }
        _ => pipe::join(&mut stream, &mut local).await,
    }
    inner.direct_in.lock().unwrap().remove(&seen_as);
    inner.spliced.lock().unwrap().remove(&seen_as);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `read_head` makes of `sent` arriving on a real connection.
    async fn head_of(sent: &[u8]) -> Result<InfoHash, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut ours, _) = listener.accept().await.unwrap();
        peer.write_all(sent).await.unwrap();
        drop(peer);
        read_head(&mut ours).await.map(|(_, hash)| hash)
    }

    #[tokio::test]
    async fn the_hash_is_read_from_a_handshake_and_anything_else_is_refused() {
        let mut handshake = vec![19u8];
        handshake.extend_from_slice(PROTOCOL);
        handshake.extend_from_slice(&[0u8; 8]);
        handshake.extend_from_slice(&[7u8; 20]);
        // The peer id may follow later: it is not waited for.
        assert_eq!(head_of(&handshake).await, Ok(InfoHash([7u8; 20])));
        let mut other = handshake.clone();
        other[1] = b'X';
        assert!(head_of(&other).await.is_err(), "another protocol");
        assert!(head_of(&handshake[..30]).await.is_err(), "cut short");
        assert!(head_of(b"GET / HTTP/1.1\r\n\r\n").await.is_err());
    }
}
