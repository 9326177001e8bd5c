//! Glue: keeps this resource's published entry (shares + addresses) in
//! step with our addresses and the share list, through
//! [`XmppHandle::set_local`].
//!
//! Not here: deciding the addresses (the watcher) or the shares (the
//! torrent engine); merging with other resources (the XMPP session).

use std::net::SocketAddr;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::OwnAddresses;
use crate::shares::{ResourceShares, Share};
use crate::xmpp::XmppHandle;

/// Spawns a task that calls `xmpp.set_local` with the latest shares and
/// addresses: once at once, then on every change of either. It never
/// waits on the network: `set_local` only queues (the session publishes
/// when online, and skips an unchanged entry).
///
/// The task ends when the address watcher ends (its sender is dropped) or
/// the XMPP session has ended. When the shares' sender is dropped, the last
/// share list is kept.
pub fn keep_published(
    xmpp: XmppHandle,
    mut addresses: watch::Receiver<OwnAddresses>,
    mut shares: watch::Receiver<Vec<Share>>,
) -> JoinHandle<()> {
    let span = tracing::info_span!("publish-addresses", jid = %xmpp.jid());
    tokio::spawn(
        async move {
            let mut shares_open = true;
            let mut published: Option<(Vec<SocketAddr>, Vec<Share>)> = None;
            loop {
                let entry = ResourceShares {
                    shares: shares.borrow_and_update().clone(),
                    addresses: addresses.borrow_and_update().addresses.clone(),
more: None,
};
                let now = (entry.addresses.clone(), entry.shares.clone());
                if published.as_ref() != Some(&now) {
                    tracing::debug!(addresses = ?entry.addresses, shares = entry.shares.len(), "updating our entry");
                    if xmpp.set_local(entry).is_err() {
                        tracing::debug!("the XMPP session has ended");
                        break;
                    }
                    published = Some(now);
                }
                tokio::select! {
                    changed = addresses.changed() => {
                        if changed.is_err() {
                            tracing::debug!("the address watcher has ended");
                            break;
                        }
                    }
                    changed = shares.changed(), if shares_open => {
                        shares_open = changed.is_ok();
                    }
                }
            }
        }
        .instrument(span),
    )
}
