//! The contacts' catalog (the original's ContactShares): per contact bare JID
//! -> resource -> {addresses, shares}, plus which resources are online.
//!
//! One owner writes ([`CatalogWriter`], held by the XMPP session); any number
//! of [`Catalog`] handles read concurrently. An item from a contact replaces
//! everything known about that contact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

use super::types::{InfoHash, ResourceShares, Share, UserShares};

#[derive(Debug, Default)]
struct ContactEntry {
    /// The contact's bare JID, shared with the per-hash index.
    jid: Arc<str>,
    item: UserShares,
    folded: Folded,
    online: BTreeSet<String>,
}

/// One contact's share names, lower-cased once and laid end to end
/// (separated by `\n`, which no valid name contains), so a search is one
/// substring scan per contact instead of one per share.
#[derive(Debug, Default)]
struct Folded {
    text: String,
    /// Where each name starts in `text`.
    starts: Vec<usize>,
    /// Which resource (index into `resources`) and share each name is.
    at: Vec<(usize, usize)>,
    resources: Vec<String>,
}

impl Folded {
    fn new(item: &UserShares) -> Folded {
        let mut f = Folded::default();
        for (ri, (resource, entry)) in item.resources.iter().enumerate() {
            f.resources.push(resource.clone());
            for (si, share) in entry.shares.iter().enumerate() {
                f.starts.push(f.text.len());
                f.at.push((ri, si));
                f.text.push_str(&share.name.as_str().to_lowercase());
                f.text.push('\n');
            }
        }
        f
    }

    /// (resource, share index) of every name containing the needle.
    fn matches<'a>(
        &'a self,
        finder: &'a memchr::memmem::Finder<'_>,
    ) -> impl Iterator<Item = (&'a str, usize)> + 'a {
        let mut last = None;
        finder
            .find_iter(self.text.as_bytes())
            .filter_map(move |pos| {
                let i = self.starts.partition_point(|&s| s <= pos) - 1;
                if last == Some(i) {
                    return None; // the same name matched twice
                }
                last = Some(i);
                let (ri, si) = self.at[i];
                Some((self.resources[ri].as_str(), si))
            })
    }
}

#[derive(Debug, Default)]
struct State {
    contacts: BTreeMap<String, ContactEntry>,
    /// info hash -> contacts whose item lists it.
    /// (Contacts named by a JID shared with their entry: one small vector
    /// per hash rather than a set with its own copy of every JID.)
    by_hash: HashMap<InfoHash, Vec<Arc<str>>>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceView {
    pub resource: String,
    pub online: bool,
    pub addresses: Vec<SocketAddr>,
    pub shares: Vec<Share>,
}

/// One contact: its published resources (online or not) and the resources
/// that are online without having published anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactView {
    pub jid: String,
    pub resources: Vec<ResourceView>,
    pub online: Vec<String>,
}

/// Where one info hash can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub jid: String,
    pub resource: String,
    pub address: SocketAddr,
    pub online: bool,
}

/// A share whose name matched a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    pub jid: String,
    pub resource: String,
    pub online: bool,
    pub share: Share,
}

fn view(resource: &str, entry: &ResourceShares, online: bool) -> ResourceView {
    ResourceView {
        resource: resource.to_string(),
        online,
        addresses: entry.addresses.clone(),
        shares: entry.shares.clone(),
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
                .item
                .resources
                .iter()
                .map(|(r, e)| view(r, e, entry.online.contains(r)))
                .collect(),
            online: entry.online.iter().cloned().collect(),
        })
    }

    /// One resource of one contact.
    pub fn resource(&self, jid: &str, resource: &str) -> Option<ResourceView> {
        let state = self.read();
        let entry = state.contacts.get(jid)?;
        let shares = entry.item.resources.get(resource)?;
        Some(view(resource, shares, entry.online.contains(resource)))
    }

    /// The item a contact published, as we hold it.
    pub fn item(&self, jid: &str) -> Option<UserShares> {
        Some(self.read().contacts.get(jid)?.item.clone())
    }

    /// Every (contact, resource, address) that lists `hash`.
    pub fn sources(&self, hash: &InfoHash) -> Vec<Source> {
        let state = self.read();
        let Some(jids) = state.by_hash.get(hash) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for jid in jids {
            let entry = &state.contacts[&**jid];
            for (resource, shares) in &entry.item.resources {
                if shares.shares.iter().any(|s| &s.hash == hash) {
                    let online = entry.online.contains(resource);
                    out.extend(shares.addresses.iter().map(|address| Source {
                        jid: jid.to_string(),
                        resource: resource.clone(),
                        address: *address,
                        online,
                    }));
                }
            }
        }
        out
    }

    /// How many contacts we know of, and how many shares they list in all.
    pub fn totals(&self) -> (usize, usize) {
        let state = self.read();
        let shares = state
            .contacts
            .values()
            .flat_map(|c| c.item.resources.values())
            .map(|r| r.shares.len())
            .sum();
        (state.contacts.len(), shares)
    }

    /// Every info hash some contact lists.
    pub fn hashes(&self) -> Vec<InfoHash> {
        self.read().by_hash.keys().copied().collect()
    }

    /// The share entry (name, size) a contact published for `hash`.
    pub fn share(&self, hash: &InfoHash) -> Option<Share> {
        let state = self.read();
        let jid = state.by_hash.get(hash)?.first()?;
        state.contacts[&**jid]
            .item
            .resources
            .values()
            .flat_map(|r| &r.shares)
            .find(|s| &s.hash == hash)
            .cloned()
    }

    /// Shares whose name contains `text`, ignoring case, across all contacts.
    pub fn search(&self, text: &str) -> Vec<SearchHit> {
        self.search_first(text, usize::MAX)
    }

    /// The first `limit` hits of [`search`](Self::search) (what a screen
    /// shows), without building the rest.
    pub fn search_first(&self, text: &str, limit: usize) -> Vec<SearchHit> {
        let needle = text.to_lowercase();
        let state = self.read();
        let mut out = Vec::new();
        let hit = |jid: &String, entry: &ContactEntry, resource: &str, share: &Share| SearchHit {
            jid: jid.clone(),
            resource: resource.to_string(),
            online: entry.online.contains(resource),
            share: share.clone(),
        };
        if needle.is_empty() {
            for (jid, entry) in &state.contacts {
                for (resource, shares) in &entry.item.resources {
                    out.extend(shares.shares.iter().map(|s| hit(jid, entry, resource, s)));
                }
            }
            out.truncate(limit);
            return out;
        }
        if needle.contains('\n') {
            return out; // no name contains a line break
        }
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        for (jid, entry) in &state.contacts {
            for (resource, si) in entry.folded.matches(&finder) {
                if out.len() == limit {
                    return out;
                }
                let share = &entry.item.resources[resource].shares[si];
                out.push(hit(jid, entry, resource, share));
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

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.catalog
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces all we know of `jid`'s shares with `item`. Returns whether
    /// anything changed (the server delivers items more than once).
    pub fn replace(&self, jid: &str, item: UserShares) -> bool {
        let folded = Folded::new(&item);
        let mut state = self.write();
        let unchanged = match state.contacts.get(jid) {
            Some(entry) => entry.item == item,
            None => item.resources.is_empty(),
        };
        if unchanged {
            return false;
        }
        let entry = entry_for(&mut state, jid);
        let key = entry.jid.clone();
        let old = std::mem::replace(&mut entry.item, item);
        entry.folded = folded;
        let new_hashes: BTreeSet<InfoHash> = hashes(&entry.item).collect();
        let remove_contact = entry.item.resources.is_empty() && entry.online.is_empty();
        for h in hashes(&old) {
            if !new_hashes.contains(&h) {
                if let Some(jids) = state.by_hash.get_mut(&h) {
                    jids.retain(|j| **j != *jid);
                    if jids.is_empty() {
                        state.by_hash.remove(&h);
                    }
                }
            }
        }
        for h in new_hashes {
            let jids = state
                .by_hash
                .entry(h)
                .or_insert_with(|| Vec::with_capacity(1));
            if !jids.iter().any(|j| **j == *jid) {
                jids.push(key.clone());
            }
        }
        if remove_contact {
            state.contacts.remove(jid);
        }
        true
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
            if entry.online.is_empty() && entry.item.resources.is_empty() {
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
            !e.item.resources.is_empty()
        });
        was_online
    }
}

/// `jid`'s entry, created empty (with its shared JID) if it is new.
fn entry_for<'a>(state: &'a mut State, jid: &str) -> &'a mut ContactEntry {
    state
        .contacts
        .entry(jid.to_string())
        .or_insert_with(|| ContactEntry {
            jid: Arc::from(jid),
            ..Default::default()
        })
}

fn hashes(item: &UserShares) -> impl Iterator<Item = InfoHash> + '_ {
    item.resources
        .values()
        .flat_map(|r| r.shares.iter().map(|s| s.hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shares::ShareName;

    fn share(hash_byte: u8, name: &str) -> Share {
        Share {
            hash: InfoHash([hash_byte; 20]),
            name: ShareName::new(name).unwrap(),
            size: 42,
        }
    }

    fn item(resources: &[(&str, Vec<Share>, &str)]) -> UserShares {
        let mut u = UserShares::default();
        for (r, shares, addr) in resources {
            u.resources.insert(
                r.to_string(),
                ResourceShares {
                    shares: shares.clone(),
                    addresses: vec![addr.parse().unwrap()],
                    more: None,
                },
            );
        }
        u
    }

    #[test]
    fn an_item_replaces_everything_known_about_the_contact() {
        let (cat, w) = Catalog::new();
        assert!(w.replace(
            "alice@x",
            item(&[
                ("laptop", vec![share(1, "Photos")], "10.0.0.1:1"),
                ("desk", vec![share(2, "b")], "10.0.0.2:2")
            ])
        ));
        assert!(!w.replace(
            "alice@x",
            item(&[
                ("laptop", vec![share(1, "Photos")], "10.0.0.1:1"),
                ("desk", vec![share(2, "b")], "10.0.0.2:2")
            ])
        ));
        assert_eq!(cat.sources(&InfoHash([2; 20])).len(), 1);
        assert!(w.replace(
            "alice@x",
            item(&[("laptop", vec![share(3, "c")], "10.0.0.1:1")])
        ));
        let c = cat.contact("alice@x").unwrap();
        assert_eq!(c.resources.len(), 1);
        assert!(cat.resource("alice@x", "desk").is_none());
        assert!(cat.sources(&InfoHash([1; 20])).is_empty());
        assert!(cat.sources(&InfoHash([2; 20])).is_empty());
        assert_eq!(
            cat.sources(&InfoHash([3; 20]))[0].address,
            "10.0.0.1:1".parse().unwrap()
        );
        assert!(w.replace("alice@x", UserShares::default()));
        assert!(cat.contact("alice@x").is_none());
        // The same empty item again (servers deliver twice) leaves no trace.
        assert!(!w.replace("alice@x", UserShares::default()));
        assert!(cat.contact("alice@x").is_none());
        assert!(cat.contacts().is_empty());
    }

    #[test]
    fn sources_span_contacts_and_resources_with_online_state() {
        let (cat, w) = Catalog::new();
        w.replace(
            "alice@x",
            item(&[("a1", vec![share(1, "f")], "10.0.0.1:1")]),
        );
        w.replace(
            "bob@x",
            item(&[
                ("b1", vec![share(1, "f")], "10.0.0.2:2"),
                ("b2", vec![], "10.0.0.3:3"),
            ]),
        );
        assert!(w.set_online("bob@x", "b1", true));
        assert!(!w.set_online("bob@x", "b1", true));
        let s = cat.sources(&InfoHash([1; 20]));
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].jid.as_str(), s[0].online), ("alice@x", false));
        assert_eq!(
            (s[1].jid.as_str(), s[1].resource.as_str(), s[1].online),
            ("bob@x", "b1", true)
        );
        assert_eq!(
            w.all_offline(),
            vec![("bob@x".to_string(), "b1".to_string())]
        );
        assert!(cat.sources(&InfoHash([1; 20])).iter().all(|s| !s.online));
    }

    #[test]
    fn search_ignores_case_across_contacts() {
        let (cat, w) = Catalog::new();
        w.replace(
            "alice@x",
            item(&[(
                "a",
                vec![share(1, "Holiday PHOTOS"), share(2, "music")],
                "10.0.0.1:1",
            )]),
        );
        w.replace(
            "bob@x",
            item(&[("b", vec![share(3, "photos of ÄPFEL")], "10.0.0.2:1")]),
        );
        let hits = cat.search("photos");
        assert_eq!(hits.len(), 2);
        assert_eq!(cat.search("äpfel").len(), 1);
        assert!(cat.search("nothing").is_empty());
        // A name matching twice is one hit; an empty query lists everything;
        // a match never spans two names.
        assert_eq!(cat.search("s").len(), 3);
        assert_eq!(cat.search("").len(), 3);
        assert_eq!(cat.search_first("s", 2).len(), 2);
        assert_eq!(cat.search_first("", 1).len(), 1);
        assert!(cat.search("photos\nmusic").is_empty());
        assert!(cat.search("photosmusic").is_empty());
    }

    #[test]
    fn a_contact_seen_online_before_its_item_is_found_by_hash() {
        let (cat, w) = Catalog::new();
        w.set_online("dora@x", "pc", true);
        w.replace("dora@x", item(&[("pc", vec![share(9, "n")], "10.0.0.9:9")]));
        let s = cat.sources(&InfoHash([9; 20]));
        assert_eq!((s[0].jid.as_str(), s[0].online), ("dora@x", true));
        assert_eq!(cat.share(&InfoHash([9; 20])).unwrap().name.as_str(), "n");
    }

    #[test]
    fn presence_without_an_item_is_tracked_and_forgotten() {
        let (cat, w) = Catalog::new();
        w.set_online("carol@x", "phone", true);
        assert_eq!(
            cat.contact("carol@x").unwrap().online,
            vec!["phone".to_string()]
        );
        w.set_online("carol@x", "phone", false);
        assert!(cat.contact("carol@x").is_none());
    }
}
