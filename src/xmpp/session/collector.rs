//! The rest of a contact's share list, from its chunks, as a pure state
//! machine: which chunks to fetch, what to expand an item with, when to
//! deliver an item again. It sends nothing and reads no catalog: the
//! session feeds it what happened (an item came, a chunk came or could not
//! be had, a contact left the roster, the connection was reset) and carries
//! out what it answers. (Not the chunks' wire format: `shares::chunks`; not
//! the fetching itself: `receive`.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio_xmpp::jid::BareJid;

use crate::shares::{chunks, PackedShares, Share, UserShares};

/// The most shares we hold for one contact, all resources together (a
/// bound on what a contact can make us keep; chunks per resource are bound
/// by `chunks::MAX_SHARES` too).
pub(super) const MAX_CONTACT_SHARES: usize = 2 * chunks::MAX_SHARES;

/// A contact's resource.
type Key = (BareJid, String);

/// A contact resource's list chunks being fetched.
#[derive(Debug)]
struct Fetch {
    version: String,
    expected: u16,
    got: BTreeMap<u16, Vec<Share>>,
    /// Shares in `got`, and the most this list may keep (see
    /// [`MAX_CONTACT_SHARES`]): the rest of the chunks is dropped as it
    /// arrives, whatever the pointer claims.
    kept: usize,
    limit: usize,
    failed: bool,
    /// The version the contact's item names for this resource now (the
    /// item last given): when a chunk cannot be had and a newer list has
    /// been published meanwhile, its chunks replaced the ones we asked for.
    named: Option<String>,
}

/// What to do with an item a contact published (see
/// [`ChunkCollector::item`]).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    /// The rest of a resource's list, fetched before for the version its
    /// pointer names: shown with the item now.
    pub(super) expand: BTreeMap<String, Arc<PackedShares>>,
    /// The resources whose chunks to fetch now (chunks `1..=more.chunks`
    /// of `more.version`).
    pub(super) fetch: Vec<(String, chunks::More)>,
}

/// What a chunk that arrived (or could not be had) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Not for a fetch under way (a newer list replaced it, or the resource
    /// or the contact left): nothing to do.
    Stale,
    /// More chunks of this list are still to come.
    Waiting,
    /// The last chunk came: the rest is kept; deliver the contact's item
    /// again to show it.
    Complete,
    /// A chunk could not be had, and the contact's item names another list
    /// meanwhile (theirs replaced the chunks we asked for): deliver the item
    /// again, which shows that list or fetches it.
    Superseded,
    /// A chunk could not be had and the list is still the current one:
    /// the part that fit in the item is all we show.
    Failed,
}

impl Chunked {
    /// Whether the contact's item (as the catalog holds it) is to be
    /// delivered again.
    pub(super) fn deliver_again(self) -> bool {
        matches!(self, Chunked::Complete | Chunked::Superseded)
    }
}

/// Shares beyond the items and the chunk fetches under way, per contact
/// resource.
#[derive(Debug, Default)]
pub(super) struct ChunkCollector {
    /// Shares beyond the item, per contact resource, for one list version:
    /// kept to expand the item again when it is delivered again, even after
    /// an item of another version came in between (several resources of an
    /// account publishing at once pass stale items around). Shared with the
    /// catalog, which holds the same allocation while it shows that version.
    /// (The item as received is the catalog's: `Catalog::received`.)
    expansions: HashMap<Key, (String, Arc<PackedShares>)>,
    /// Chunk fetches under way.
    fetches: HashMap<Key, Fetch>,
}

impl ChunkCollector {
    /// An item from `jid` is to be shown: what belonged to resources it no
    /// longer lists goes (a contact cycling resource names cannot make us
    /// keep more); a pointer whose list we hold expands the item; one whose
    /// list is not fetched yet, nor under way, is fetched (replacing a
    /// fetch of another version).
    pub(super) fn item(&mut self, jid: &BareJid, item: &UserShares) -> Plan {
        self.expansions
            .retain(|(j, r), _| j != jid || item.resources.contains_key(r));
        self.fetches
            .retain(|(j, r), _| j != jid || item.resources.contains_key(r));
        let mut plan = Plan::default();
        for (resource, entry) in &item.resources {
            let key = (jid.clone(), resource.clone());
            if let Some(fetch) = self.fetches.get_mut(&key) {
                fetch.named = entry.more.as_ref().map(|m| m.version.clone());
            }
            let Some(more) = &entry.more else {
                continue;
            };
            match self.expansions.get(&key) {
                Some((version, rest)) if *version == more.version => {
                    plan.expand.insert(resource.clone(), rest.clone());
                }
                _ => {
                    let under_way = self
                        .fetches
                        .get(&key)
                        .is_some_and(|f| f.version == more.version);
                    if !under_way {
                        plan.fetch.push((resource.clone(), more.clone()));
                    }
                }
            }
        }
        // One after the other: each fetch's room counts those before it.
        for (resource, more) in &plan.fetch {
            let limit = self.room_for(jid, resource, item);
            self.fetches.insert(
                (jid.clone(), resource.clone()),
                Fetch {
                    version: more.version.clone(),
                    expected: more.chunks,
                    got: BTreeMap::new(),
                    kept: 0,
                    limit,
                    failed: false,
                    named: Some(more.version.clone()),
                },
            );
        }
        plan
    }

    /// How many shares the chunks of `jid/resource` may still add: the
    /// contact's bound less what its item and its other resources hold.
    fn room_for(&self, jid: &BareJid, resource: &str, item: &UserShares) -> usize {
        let in_item: usize = item.resources.values().map(|e| e.shares.len()).sum();
        let elsewhere: usize = self
            .expansions
            .iter()
            .filter(|((j, r), _)| j == jid && r != resource)
            .map(|(_, (_, rest))| rest.len())
            .chain(
                self.fetches
                    .iter()
                    .filter(|((j, r), _)| j == jid && r != resource)
                    .map(|(_, f)| f.limit),
            )
            .sum();
        MAX_CONTACT_SHARES
            .saturating_sub(in_item + elsewhere)
            .min(chunks::MAX_SHARES)
    }

    /// Chunk `n` of `version` of `jid/resource`'s list arrived (`Some`: its
    /// shares) or could not be had (`None`).
    pub(super) fn chunk(
        &mut self,
        jid: &BareJid,
        resource: &str,
        version: &str,
        n: u16,
        shares: Option<Vec<Share>>,
    ) -> Chunked {
        let key = (jid.clone(), resource.to_string());
        let Some(fetch) = self.fetches.get_mut(&key).filter(|f| f.version == version) else {
            return Chunked::Stale;
        };
        match shares {
            Some(mut s) => {
                s.truncate(fetch.limit - fetch.kept);
                fetch.kept += s.len();
                fetch.got.insert(n, s);
            }
            None => fetch.failed = true,
        }
        if !fetch.failed && fetch.got.len() < usize::from(fetch.expected) {
            return Chunked::Waiting;
        }
        let fetch = self.fetches.remove(&key).expect("looked up above");
        if fetch.failed {
            return match fetch.named {
                Some(named) if named != fetch.version => Chunked::Superseded,
                _ => Chunked::Failed,
            };
        }
        let rest: Vec<Share> = fetch.got.into_values().flatten().collect();
        let rest = Arc::new(PackedShares::new(&rest));
        self.expansions.insert(key, (fetch.version, rest));
        Chunked::Complete
    }

    /// `jid` left the roster: nothing of theirs is kept or fetched.
    pub(super) fn forget(&mut self, jid: &BareJid) {
        self.expansions.retain(|(j, _), _| j != jid);
        self.fetches.retain(|(j, _), _| j != jid);
    }

    /// A new connection: the requests of the fetches under way were lost
    /// with the old one (an item delivered again fetches anew). What was
    /// fetched is kept.
    pub(super) fn reconnected(&mut self) {
        self.fetches.clear();
    }
}

#[cfg(test)]
mod tests;
