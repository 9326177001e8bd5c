//! Our restricted lists (issue 18; docs/PROTOCOL.md, "Restricted lists"):
//! a share whose audience is some groups or contacts never goes into the
//! public list. Each contact who may see one or more of them gets a node of
//! their own on our PEP service (`reader_node`), `whitelist` with them as
//! its one member, holding exactly what they may see; after each change
//! they get a content-free `<changed/>` notice and fetch it.
//!
//! Fail closed: a node holds restricted shares only once this session has
//! read back from the server that it is `whitelist` and that its only
//! member is its reader, and every publish carries that access model as a
//! precondition. When the server does not keep to that, nothing restricted
//! is published and [`RestrictedStatus`] says why. A node's access list is
//! never changed to take a share away (on both servers an explicit
//! subscription outlives the affiliation): the reader's node is published
//! again without it, or deleted.
//!
//! Not here: reading contacts' restricted lists (the XMPP session,
//! `restricted_in`); the wire helpers (`wire`).

mod node;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::addresses::OwnAddresses;
use crate::events::{Event, EventBus};
use crate::shares::{
    reader_node, Audience, InfoHash, ResourceShares, Share, UserShares, NS_RESTRICTED,
};
use crate::xmpp::{ConnectionState, Contact, IqError, XmppHandle};

/// What the UI says when the server will not restrict a node.
pub const REFUSED: &str =
    "your server cannot restrict who sees a share; restricted shares stay unpublished";
/// How long one request of the flow may take.
const IQ_TIMEOUT: Duration = Duration::from_secs(15);
/// Changes are gathered this long before the lists are brought up to date.
const QUIET: Duration = Duration::from_millis(300);
/// After a passing failure (offline, no answer), the next try.
const RETRY: Duration = Duration::from_secs(5);

/// How our restricted lists stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictedStatus {
    /// `none` (no restricted share to publish), `published`, `pending`
    /// (offline, or being brought up to date), `refused` (the server would
    /// not keep them restricted) or `failed` (another reason, given).
    pub state: String,
    /// Why restricted shares stay unpublished (`refused`), or what is
    /// awaited (`pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many contacts have a restricted list of ours.
    pub readers: usize,
}

impl RestrictedStatus {
    fn new(state: &str, reason: Option<String>, readers: usize) -> RestrictedStatus {
        RestrictedStatus {
            state: state.into(),
            reason,
            readers,
        }
    }

    /// The server would not keep them restricted, for `why`.
    fn refused(why: &str) -> RestrictedStatus {
        RestrictedStatus::new("refused", Some(format!("{REFUSED} ({why})")), 0)
    }
}

/// The task that keeps our restricted lists; its status.
#[derive(Debug, Clone)]
pub struct RestrictedLists {
    status: watch::Receiver<RestrictedStatus>,
    views: Views,
}

/// What each reader (bare JID, lower-case) may see of our restricted
/// shares, as last worked out from the roster.
type Views = Arc<RwLock<BTreeMap<String, BTreeSet<InfoHash>>>>;

impl RestrictedLists {
    /// Starts keeping every contact's restricted list equal to the
    /// restricted `shares` they may see, with our `addresses`.
    pub fn spawn(
        xmpp: XmppHandle,
        events: EventBus,
        shares: watch::Receiver<Vec<(Share, Audience)>>,
        addresses: watch::Receiver<OwnAddresses>,
        stop: CancellationToken,
    ) -> RestrictedLists {
        let (tx, status) = watch::channel(RestrictedStatus::new("none", None, 0));
        let views = Views::default();
        let owner = Owner {
            views: views.clone(),
            own: xmpp.jid().to_string().to_lowercase(),
            own_jid: xmpp.bare_jid().clone(),
            xmpp,
            events,
            status: tx,
            server_checked: false,
            verified: BTreeSet::new(),
            published: BTreeMap::new(),
            reconciled: false,
            refused: None,
            lost_on_publish: 0,
        };
        tokio::spawn(tracing::Instrument::instrument(
            owner.run(shares, addresses, stop),
            tracing::debug_span!("restricted-lists"),
        ));
        RestrictedLists { status, views }
    }

    pub fn status(&self) -> RestrictedStatus {
        self.status.borrow().clone()
    }

    /// Whether the restricted share `hash` is for the contact `jid` (bare),
    /// as the roster said at the last update (none yet: for nobody).
    pub fn admits(&self, jid: &str, hash: &InfoHash) -> bool {
        self.views
            .read()
            .unwrap()
            .get(&jid.to_lowercase())
            .is_some_and(|hashes| hashes.contains(hash))
    }
}

/// Why the lists could not be brought up to date.
enum Fail {
    /// Offline, no answer, lost: try again in a moment.
    Passing(String),
    /// The server does not keep restricted nodes restricted.
    Refused(String),
    /// Something else went wrong (a list too large for the server, say):
    /// said as it is, and tried again at the next change.
    Other(String),
}

impl From<IqError> for Fail {
    fn from(e: IqError) -> Fail {
        if e.passing() {
            Fail::Passing(e.text)
        } else {
            Fail::Refused(e.text)
        }
    }
}

struct Owner {
    xmpp: XmppHandle,
    views: Views,
    /// Our bare JID, lower-case (as affiliations are compared), and as a
    /// JID (where our requests go).
    own: String,
    own_jid: tokio_xmpp::jid::BareJid,
    events: EventBus,
    status: watch::Sender<RestrictedStatus>,
    // What this session has learned; all forgotten at a reconnect.
    server_checked: bool,
    /// Nodes read back as `whitelist` with only their reader as member.
    verified: BTreeSet<String>,
    /// Each reader's item as the server holds it (after our publish).
    published: BTreeMap<String, UserShares>,
    /// Nodes left from earlier sessions were looked at.
    reconciled: bool,
    /// The server refused to restrict: nothing restricted this session.
    refused: Option<String>,
    /// Connections lost in a row while a publish awaited its answer.
    lost_on_publish: u8,
}

impl Owner {
    async fn run(
        mut self,
        mut shares: watch::Receiver<Vec<(Share, Audience)>>,
        mut addresses: watch::Receiver<OwnAddresses>,
        stop: CancellationToken,
    ) {
        let mut events = self.events.subscribe();
        let mut due = Some(Instant::now());
        let mut shares_open = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = shares.changed(), if shares_open => {
                    shares_open = changed.is_ok();
                    due = Some(Instant::now() + QUIET);
                }
                changed = addresses.changed() => {
                    if changed.is_err() { break }
                    due = Some(Instant::now() + QUIET);
                }
                ev = events.recv() => match ev {
                    Ok(Event::Connected { .. }) => {
                        self.new_session();
                        due = Some(Instant::now() + QUIET);
                    }
                    Ok(Event::RosterChanged)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        due = Some(Instant::now() + QUIET);
                    }
                    Err(_) => break,
                    Ok(_) => {}
                },
                _ = crate::clock::sleep_until(due), if due.is_some() => {
                    due = None;
                    let restricted = shares.borrow().clone();
                    let ours = addresses.borrow().addresses.clone();
                    if let Err(reason) = self.sync(&restricted, &ours).await {
                        tracing::debug!("restricted lists wait: {reason}");
                        due = Some(Instant::now() + RETRY);
                    }
                }
            }
        }
    }

    fn new_session(&mut self) {
        self.server_checked = false;
        self.verified.clear();
        self.published.clear();
        self.reconciled = false;
        self.refused = None;
    }

    fn set_status(&self, status: RestrictedStatus) {
        if *self.status.borrow() != status {
            self.status.send_replace(status.clone());
            self.events.send(Event::Restricted { status });
        }
    }

    /// Brings every reader's node up to date. `Err` (a passing failure):
    /// try again soon.
    async fn sync(
        &mut self,
        restricted: &[(Share, Audience)],
        addresses: &[SocketAddr],
    ) -> Result<(), String> {
        let resource = match self.xmpp.state() {
            ConnectionState::Online { jid } => jid.split_once('/').map(|(_, r)| r.to_string()),
            _ => None,
        };
        let Some(resource) = resource else {
            if !restricted.is_empty() {
                self.set_status(RestrictedStatus::new(
                    "pending",
                    Some("offline: published once connected".into()),
                    0,
                ));
            }
            return Ok(()); // the next Connected event brings us back
        };
        if let Some(reason) = &self.refused {
            self.set_status(RestrictedStatus::refused(reason));
            return Ok(());
        }
        let roster = self.xmpp.roster().await.map_err(|e| e.to_string())?;
        let views = views(restricted, &roster);
        *self.views.write().unwrap() = views
            .iter()
            .map(|(reader, shares)| (reader.clone(), shares.iter().map(|s| s.hash).collect()))
            .collect();
        match self
            .bring_up_to_date(&resource, &views, &roster, addresses)
            .await
        {
            Ok(()) => {
                let state = if views.is_empty() {
                    "none"
                } else {
                    "published"
                };
                self.set_status(RestrictedStatus::new(state, None, views.len()));
                Ok(())
            }
            Err(Fail::Passing(reason)) => {
                self.set_status(RestrictedStatus::new("pending", Some(reason.clone()), 0));
                Err(reason)
            }
            Err(Fail::Other(reason)) => {
                tracing::warn!("restricted lists: {reason}");
                self.set_status(RestrictedStatus::new("failed", Some(reason), 0));
                Ok(())
            }
            Err(Fail::Refused(reason)) => {
                tracing::warn!("{REFUSED}: {reason}");
                self.refused = Some(reason.clone());
                // What this session made goes: nothing restricted stays on
                // a server that would not keep it so.
                for reader in std::mem::take(&mut self.published).into_keys() {
                    let _ = self.iq_set(wire::delete(&reader_node(&reader))).await;
                }
                self.verified.clear();
                self.set_status(RestrictedStatus::refused(&reason));
                Ok(())
            }
        }
    }

    async fn bring_up_to_date(
        &mut self,
        resource: &str,
        views: &BTreeMap<String, Vec<Share>>,
        roster: &[Contact],
        addresses: &[SocketAddr],
    ) -> Result<(), Fail> {
        if !self.reconciled {
            match self.reconcile(resource, views, roster).await {
                Err(Fail::Refused(why)) => {
                    // (Not a gate: nodes are checked before anything goes
                    // into them. Only leftovers stay.)
                    tracing::warn!("could not look for restricted lists left from before: {why}");
                    self.reconciled = true;
                }
                other => other?,
            }
        }
        for (reader, shares) in views {
            let entry = ResourceShares {
                shares: shares.clone(),
                addresses: addresses.to_vec(),
                more: None,
            };
            let up_to_date = self
                .published
                .get(reader)
                .and_then(|item| item.resources.get(resource))
                .is_some_and(|e| *e == entry);
            if up_to_date {
                continue;
            }
            self.ensure_node(reader).await?;
            let mut item = match self.published.get(reader) {
                Some(item) => item.clone(),
                None => self.fetch_item(reader).await?,
            };
            item.resources.insert(resource.to_string(), entry);
            self.publish(reader, item).await?;
        }
        // Readers who may see nothing of ours any more.
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|r| !views.contains_key(*r))
            .cloned()
            .collect();
        for reader in gone {
            let mut item = self.published.remove(&reader).unwrap_or_default();
            item.resources.remove(resource);
            self.withdraw(&reader, item).await?;
        }
        Ok(())
    }

    /// At the start of a session: our nodes left from before for readers
    /// who may no longer see anything of ours lose our entry (or go).
    async fn reconcile(
        &mut self,
        resource: &str,
        views: &BTreeMap<String, Vec<Share>>,
        roster: &[Contact],
    ) -> Result<(), Fail> {
        let answer = self.iq_get(wire::disco_items()).await?;
        let nodes = answer.as_ref().map(wire::item_nodes).unwrap_or_default();
        let prefix = format!("{NS_RESTRICTED}/");
        let readers: BTreeMap<String, String> = roster
            .iter()
            .map(|c| (reader_node(&c.jid), c.jid.to_lowercase()))
            .collect();
        for node in nodes.iter().filter(|n| n.starts_with(&prefix)) {
            match readers.get(node) {
                Some(reader) if views.contains_key(reader) => {}
                Some(reader) => {
                    let mut item = self.fetch_item(reader).await?;
                    if item.resources.remove(resource).is_some() || item.resources.is_empty() {
                        self.withdraw(reader, item).await?;
                    }
                }
                // Its reader left the roster: nobody of ours writes to it.
                None => {
                    tracing::info!(node, "deleting the restricted list of a former contact");
                    self.iq_set(wire::delete(node)).await?;
                }
            }
        }
        self.reconciled = true;
        Ok(())
    }
}

/// What each contact may see of `restricted`: for every roster contact who
/// sees our presence, the shares whose audience admits them (those with
/// nothing to see are left out).
pub fn views(restricted: &[(Share, Audience)], roster: &[Contact]) -> BTreeMap<String, Vec<Share>> {
    roster
        .iter()
        .filter(|c| c.subscription.they_see_us())
        .filter_map(|c| {
            let jid = c.jid.to_lowercase();
            let shares: Vec<Share> = restricted
                .iter()
                .filter(|(_, a)| a.admits(&jid, &c.groups))
                .map(|(s, _)| s.clone())
                .collect();
            (!shares.is_empty()).then_some((jid, shares))
        })
        .collect()
}
