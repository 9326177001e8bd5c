//! The contacts' catalog (the original's ContactShares): per contact bare JID
//! -> resource -> {addresses, shares}, plus which resources are online.
//!
//! One owner writes ([`CatalogWriter`], held by the XMPP session); any number
//! of [`Catalog`] handles read concurrently. An item from a contact replaces
//! everything known about that contact.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use super::chunks::{self, More};
use super::packed::PackedShares;
use super::types::{InfoHash, ResourceShares, Share, UserShares};

#[derive(Debug, Default)]
struct ContactEntry {
    resources: BTreeMap<String, Held>,
    online: BTreeSet<String>,
}

/// One resource's entry as held: its shares packed (names once, lower-cased
/// for search; an index by hash) in two parts, those the item carried and
/// those its chunks added.
#[derive(Debug)]
struct Held {
    item: PackedShares,
    /// Shared with the session that fetched the chunks (it keeps them to
    /// expand the item when it is delivered again), so held once.
    rest: Option<Arc<PackedShares>>,
    addresses: Vec<SocketAddr>,
    more: Option<More>,
}

impl Held {
    fn parts(&self) -> impl Iterator<Item = &PackedShares> {
        std::iter::once(&self.item).chain(self.rest.as_deref())
    }

    fn len(&self) -> usize {
        self.parts().map(PackedShares::len).sum()
    }

    fn get(&self, i: usize) -> Share {
        match i.checked_sub(self.item.len()) {
            None => self.item.get(i),
            Some(j) => self.rest.as_ref().expect("index in range").get(j),
        }
    }

    fn shares(&self) -> Vec<Share> {
        self.parts().flat_map(PackedShares::to_vec).collect()
    }

    /// The first share with `hash`.
    fn find(&self, hash: &InfoHash) -> Option<usize> {
        let mut offset = 0;
        for part in self.parts() {
            if let Some(i) = part.find(hash) {
                return Some(offset + i);
            }
            offset += part.len();
        }
        None
    }

    /// The same published entry (what a reader sees), however it is split.
    fn same(&self, other: &Held) -> bool {
        if self.addresses != other.addresses || self.more != other.more {
            return false;
        }
        let same_rest = match (&self.rest, &other.rest) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        };
        if self.item == other.item && same_rest {
            return true;
        }
        self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }

    /// The entry with every share, those that came in chunks included.
    fn entry(&self) -> ResourceShares {
        self.entry_with(self.shares())
    }

    /// The entry as it came in the item, without the chunks' shares.
    fn received(&self) -> ResourceShares {
        self.entry_with(self.item.to_vec())
    }

    fn entry_with(&self, shares: Vec<Share>) -> ResourceShares {
        ResourceShares {
            shares,
            addresses: self.addresses.clone(),
            more: self.more.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    contacts: BTreeMap<String, ContactEntry>,
    /// The hashes each contact listed for us alone or a few (their
    /// restricted list for us), beside the public ones in `contacts`.
    restricted: BTreeMap<String, BTreeSet<InfoHash>>,
}

/// A read handle on the catalog; cheap to clone, safe to share.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    state: Arc<RwLock<State>>,
}

/// The single writer of a catalog.
#[derive(Debug)]
pub struct CatalogWriter {
    catalog: Catalog,
}

/// One resource of a contact, as seen now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceView {
    pub resource: String,
    pub online: bool,
    pub addresses: Vec<SocketAddr>,
    pub shares: Vec<Share>,
}

/// One contact: its published resources (online or not) and the resources
/// that are online without having published anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    pub jid: String,
    pub resources: Vec<ResourceView>,
    pub online: Vec<String>,
}

/// Where one info hash can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub jid: String,
    pub resource: String,
    pub address: SocketAddr,
    pub online: bool,
}

/// A share whose name matched a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub jid: String,
    pub resource: String,
    pub online: bool,
    pub share: Share,
}

fn view(resource: &str, held: &Held, online: bool) -> ResourceView {
    ResourceView {
        resource: resource.to_string(),
        online,
        addresses: held.addresses.clone(),
        shares: held.shares(),
    }
}

impl Catalog {
    /// A new, empty catalog and its one writer.
    pub fn new() -> (Catalog, CatalogWriter) {
        let catalog = Catalog::default();
        (catalog.clone(), CatalogWriter { catalog })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written
        // (every write builds its value first), so a poisoned lock is usable.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The bare JIDs we know anything about (published or online).
    pub fn contacts(&self) -> Vec<String> {
        self.read().contacts.keys().cloned().collect()
    }

    /// What we know of one contact.
    pub fn contact(&self, jid: &str) -> Option<ContactView> {
        let state = self.read();
        let entry = state.contacts.get(jid)?;
        Some(ContactView {
            jid: jid.to_string(),
            resources: entry
                .resources
                .iter()
                .map(|(r, held)| view(r, held, entry.online.contains(r)))
                .collect(),
            online: entry.online.iter().cloned().collect(),
        })
    }

    /// One resource of one contact.
    pub fn resource(&self, jid: &str, resource: &str) -> Option<ResourceView> {
        let state = self.read();
        let entry = state.contacts.get(jid)?;
        let held = entry.resources.get(resource)?;
        Some(view(resource, held, entry.online.contains(resource)))
    }

    /// The item a contact published, as we hold it (with the shares that
    /// came in chunks).
    pub fn item(&self, jid: &str) -> Option<UserShares> {
        self.item_with(jid, Held::entry)
    }

    /// The item a contact published as it was received: without the shares
    /// that came in chunks.
    pub fn received(&self, jid: &str) -> Option<UserShares> {
        self.item_with(jid, Held::received)
    }

    fn item_with(&self, jid: &str, entry: fn(&Held) -> ResourceShares) -> Option<UserShares> {
        let state = self.read();
        let contact = state.contacts.get(jid)?;
        Some(UserShares {
            resources: contact
                .resources
                .iter()
                .map(|(r, held)| (r.clone(), entry(held)))
                .collect(),
        })
    }

    /// Every (contact, resource, address) that lists `hash`.
    pub fn sources(&self, hash: &InfoHash) -> Vec<Source> {
        let state = self.read();
        let mut out = Vec::new();
        for (jid, entry) in &state.contacts {
            for (resource, held) in &entry.resources {
                if held.find(hash).is_some() {
                    let online = entry.online.contains(resource);
                    out.extend(held.addresses.iter().map(|address| Source {
                        jid: jid.clone(),
                        resource: resource.clone(),
                        address: *address,
                        online,
                    }));
                }
            }
        }
        out
    }

    /// Every online contact resource that lists `hash` and published at
    /// least one address: (contact, resource).
    pub fn online_holders(&self, hash: &InfoHash) -> Vec<(String, String)> {
        let state = self.read();
        let mut out = Vec::new();
        for (jid, entry) in &state.contacts {
            for resource in &entry.online {
                let Some(held) = entry.resources.get(resource) else {
                    continue;
                };
                if !held.addresses.is_empty() && held.find(hash).is_some() {
                    out.push((jid.clone(), resource.clone()));
                }
            }
        }
        out
    }

    /// Every online contact resource with at least one published address.
    pub fn online_resources(&self) -> Vec<(String, String)> {
        let state = self.read();
        let mut out = Vec::new();
        for (jid, entry) in &state.contacts {
            for resource in &entry.online {
                if entry
                    .resources
                    .get(resource)
                    .is_some_and(|h| !h.addresses.is_empty())
                {
                    out.push((jid.clone(), resource.clone()));
                }
            }
        }
        out
    }

    /// The addresses `jid/resource` publishes, if it is online.
    pub fn online_addresses(&self, jid: &str, resource: &str) -> Option<Vec<SocketAddr>> {
        let state = self.read();
        let entry = state.contacts.get(jid)?;
        if !entry.online.contains(resource) {
            return None;
        }
        Some(entry.resources.get(resource)?.addresses.clone())
    }

    /// Whether we see `jid/resource` online.
    pub fn is_online(&self, jid: &str, resource: &str) -> bool {
        let state = self.read();
        state
            .contacts
            .get(jid)
            .is_some_and(|e| e.online.contains(resource))
    }

    /// Whether `jid/resource` lists `hash` now.
    pub fn lists(&self, jid: &str, resource: &str, hash: &InfoHash) -> bool {
        let state = self.read();
        state
            .contacts
            .get(jid)
            .and_then(|e| e.resources.get(resource))
            .is_some_and(|h| h.find(hash).is_some())
    }

    /// How many contacts we know of, and how many shares they list in all.
    pub fn totals(&self) -> (usize, usize) {
        let state = self.read();
        let shares = state
            .contacts
            .values()
            .flat_map(|c| c.resources.values())
            .map(Held::len)
            .sum();
        (state.contacts.len(), shares)
    }

    /// Every info hash some contact lists (in order, each once).
    pub fn hashes(&self) -> Vec<InfoHash> {
        let state = self.read();
        let all: BTreeSet<InfoHash> = state
            .contacts
            .values()
            .flat_map(|c| c.resources.values())
            .flat_map(Held::parts)
            .flat_map(|p| p.hashes().iter().copied())
            .collect();
        all.into_iter().collect()
    }

    /// The share entry (name, size) a contact published for `hash` (the
    /// first contact in JID order that lists it).
    pub fn share(&self, hash: &InfoHash) -> Option<Share> {
        let state = self.read();
        state
            .contacts
            .values()
            .flat_map(|c| c.resources.values())
            .find_map(|r| Some(r.get(r.find(hash)?)))
    }

    /// Whether a contact listed `hash` in their restricted list for us:
    /// then what we download of it is not passed on to our own contacts.
    pub fn from_restricted(&self, hash: &InfoHash) -> bool {
        self.read().restricted.values().any(|h| h.contains(hash))
    }

    /// Shares whose name contains `text`, ignoring case, across all contacts.
    pub fn search(&self, text: &str) -> Vec<SearchHit> {
        self.search_first(text, usize::MAX)
    }

    /// The first `limit` hits of [`search`](Self::search) (what a screen
    /// shows), without building the rest.
    pub fn search_first(&self, text: &str, limit: usize) -> Vec<SearchHit> {
        let needle = text.to_lowercase();
        let mut out = Vec::new();
        if needle.contains('\n') {
            return out; // no name contains a line break
        }
        let state = self.read();
        let finder = Finder::new(needle.as_bytes());
        for (jid, entry) in &state.contacts {
            for (resource, held) in &entry.resources {
                let online = entry.online.contains(resource);
                for part in held.parts() {
                    let hit = |i: usize| SearchHit {
                        jid: jid.clone(),
                        resource: resource.clone(),
                        online,
                        share: part.get(i),
                    };
                    let remaining = limit - out.len();
                    if needle.is_empty() {
                        out.extend((0..part.len()).take(remaining).map(hit));
                    } else {
                        out.extend(part.matches(&finder).take(remaining).map(hit));
                    }
                    if out.len() == limit {
                        return out;
                    }
                }
            }
        }
        out
    }
}

impl CatalogWriter {
    /// A read handle on the same catalog.
    pub fn reader(&self) -> Catalog {
        self.catalog.clone()
    }

    /// Records which of `jid`'s shares came from their restricted list for
    /// us (see [`Catalog::from_restricted`]).
    pub fn set_restricted(&self, jid: &str, hashes: BTreeSet<InfoHash>) {
        let mut state = self.write();
        if hashes.is_empty() {
            state.restricted.remove(jid);
        } else {
            state.restricted.insert(jid.to_string(), hashes);
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.catalog
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces all we know of `jid`'s shares with `item`. Returns whether
    /// anything changed (the server delivers items more than once).
    pub fn replace(&self, jid: &str, item: UserShares) -> bool {
        self.replace_expanded(jid, item, &BTreeMap::new())
    }

    /// [`replace`](Self::replace) with the item as received and, for
    /// resources whose list goes on in chunks, the shares those chunks hold
    /// (of the pointer's version). They follow the item's own shares, less
    /// any the item already lists and beyond the pointer's total; the rest
    /// is held as given, not copied, when nothing of it is left out.
    pub(crate) fn replace_expanded(
        &self,
        jid: &str,
        item: UserShares,
        rests: &BTreeMap<String, Arc<PackedShares>>,
    ) -> bool {
        // Packed before taking the lock: readers wait only for the swap.
        let resources: BTreeMap<String, Held> = item
            .resources
            .into_iter()
            .map(|(r, entry)| {
                let held = held(entry, rests.get(&r));
                (r, held)
            })
            .collect();
        let mut state = self.write();
        let changed = match state.contacts.get(jid) {
            Some(entry) => {
                entry.resources.len() != resources.len()
                    || entry
                        .resources
                        .iter()
                        .zip(&resources)
                        .any(|((r1, h1), (r2, h2))| r1 != r2 || !h1.same(h2))
            }
            None => !resources.is_empty(),
        };
        let online = state
            .contacts
            .get(jid)
            .is_some_and(|e| !e.online.is_empty());
        if resources.is_empty() && !online {
            state.contacts.remove(jid);
        } else {
            entry_for(&mut state, jid).resources = resources;
        }
        changed
    }

    /// Records that `jid/resource` came online or went offline. Returns
    /// whether that changed anything.
    pub fn set_online(&self, jid: &str, resource: &str, online: bool) -> bool {
        let mut state = self.write();
        if online {
            entry_for(&mut state, jid)
                .online
                .insert(resource.to_string())
        } else {
            let Some(entry) = state.contacts.get_mut(jid) else {
                return false;
            };
            let changed = entry.online.remove(resource);
            if entry.online.is_empty() && entry.resources.is_empty() {
                state.contacts.remove(jid);
            }
            changed
        }
    }

    /// Marks every resource of every contact offline (our own connection
    /// dropped: we no longer know who is online). Published items stay.
    /// Returns the (contact, resource) pairs that were online.
    pub fn all_offline(&self) -> Vec<(String, String)> {
        let mut state = self.write();
        let mut was_online = Vec::new();
        state.contacts.retain(|jid, e| {
            was_online.extend(
                std::mem::take(&mut e.online)
                    .into_iter()
                    .map(|r| (jid.clone(), r)),
            );
            !e.resources.is_empty()
        });
        was_online
    }
}

/// One resource's entry, with the shares of its chunks when they are in.
fn held(entry: ResourceShares, rest: Option<&Arc<PackedShares>>) -> Held {
    let item = PackedShares::new(&entry.shares);
    let rest = entry.more.as_ref().zip(rest).map(|(more, rest)| {
        let room = (more.total as usize)
            .min(chunks::MAX_SHARES)
            .saturating_sub(item.len());
        let listed = |h: &InfoHash| item.find(h).is_some();
        if rest.len() <= room && !rest.hashes().iter().any(listed) {
            return rest.clone();
        }
        let kept: Vec<Share> = rest
            .to_vec()
            .into_iter()
            .filter(|s| !listed(&s.hash))
            .take(room)
            .collect();
        Arc::new(PackedShares::new(&kept))
    });
    Held {
        item,
        rest,
        addresses: entry.addresses,
        more: entry.more,
    }
}

/// `jid`'s entry, created empty if it is new.
fn entry_for<'a>(state: &'a mut State, jid: &str) -> &'a mut ContactEntry {
    state.contacts.entry(jid.to_string()).or_default()
}

#[cfg(test)]
mod tests;
