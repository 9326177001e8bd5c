//! The answering side of a punched or relayed connection: a contact's
//! device asks (over XMPP); we check it, agree, make our half of the
//! connection, and hand it to librqbit like any incoming peer (`splice.rs`).
//!
//! Checks: the asker is a contact resource online now (the XMPP session
//! only forwards requests from contacts whose presence we see), it asks for
//! a torrent we serve whose audience admits it, and within its rate. A relay is only ever one of our
//! own server, at the address the relay gives: never an address the asker
//! chose.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::signal::{Accept, Mode, Request};
use super::splice::{deliver, Origin};
use super::{dial, punch, relay, Inner, PathKind, PeerPath};

/// How long we punch towards the asker.
const PUNCH_WINDOW: Duration = Duration::from_secs(6);

/// Answers `from`'s request (its full JID), or says why not.
pub(super) async fn answer(inner: &Arc<Inner>, from: &str, req: Request) -> Result<Accept, String> {
    let (bare, resource) = from
        .split_once('/')
        .ok_or_else(|| "the request came from a bare JID".to_string())?;
    if !inner.catalog.is_online(bare, resource) {
        return Err("we do not see this device online".into());
    }
    if !inner.allow_request(bare) {
        return Err("too many requests; try again in a minute".into());
    }
    let serving = inner.serving.get().is_some_and(|serves| serves(&req.hash));
    let may_see = inner.may_see.get().is_none_or(|may| may(bare, &req.hash));
    if !serving || !may_see {
        // (The same answer: who is not in a share's audience does not
        // learn that it exists.)
        return Err(format!("{} is not shared here", req.hash));
    }
    if inner.listener.get().is_none() {
        return Err("the BitTorrent engine is not running".into());
    }
    let who = from.to_string();
    match req.mode {
        Mode::Punch => {
            let port = punch::free_port(false).map_err(|e| format!("no local port: {e}"))?;
            let port6 = punch::free_port(true).ok();
            let candidates = inner.punch_candidates(port, port6);
            if candidates.is_empty() {
                return Err("we publish no address to punch from".into());
            }
            let theirs = dial::order(&req.candidates, inner.allow_loopback);
            let inner = inner.clone();
            tokio::spawn(async move {
                match punch::punch(Some(port), port6, &theirs, PUNCH_WINDOW).await {
                    Ok((stream, address)) => {
                        let path = PeerPath {
                            contact: who,
                            address,
                            path: PathKind::Punched,
                            via: None,
                        };
                        deliver(&inner, stream, Origin::Path(path)).await;
                    }
                    Err(e) => tracing::debug!(%who, "punching towards the asker failed: {e}"),
                }
            });
            Ok(Accept {
                sid: req.sid,
                candidates,
                proxy: None,
            })
        }
        Mode::Relay => {
            if !inner.relay.load(Ordering::SeqCst) {
                return Err("relaying is off here".into());
            }
            let signal = inner
                .signal
                .get()
                .ok_or_else(|| "we are offline".to_string())?;
            let own = signal
                .own_full_jid()
                .ok_or_else(|| "we are offline".to_string())?;
            let proxy = signal
                .own_relay()
                .await
                .ok_or_else(|| "our server offers no relay".to_string())?;
            let name = relay::stream_name(&req.sid, from, &own);
            let stream = relay::connect(proxy.address, &name).await?;
            let path = PeerPath {
                contact: who,
                address: proxy.address,
                path: PathKind::Relayed,
                via: Some(proxy.jid.clone()),
            };
            let spliced = inner.clone();
            tokio::spawn(async move { deliver(&spliced, stream, Origin::Path(path)).await });
            Ok(Accept {
                sid: req.sid,
                candidates: vec![],
                proxy: Some(proxy),
            })
        }
    }
}
