//! Which backend events deserve a desktop notification, and their text:
//! a contact shared new files (batched per contact), a download finished
//! or failed. Pure bookkeeping, so the shell only has to show them.
//!
//! A contact's first list after we log in is the baseline, not news: only
//! shares that appear later are announced.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::events::Event;
use crate::shares::{Catalog, InfoHash};

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// Tracks what each contact shared, to announce only what is new.
#[derive(Debug, Default)]
pub struct Notices {
    known: HashMap<String, HashSet<InfoHash>>,
    /// New share names per contact, waiting for [`Notices::flush`].
    pending: BTreeMap<String, Vec<String>>,
}

fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

impl Notices {
    pub fn new() -> Notices {
        Notices::default()
    }

    /// Forgets every baseline (after logging in again).
    pub fn reset(&mut self) {
        self.known.clear();
        self.pending.clear();
    }

    /// Looks at one event: returns a notice to show now (downloads), and
    /// queues new shares of contacts for the next [`flush`](Self::flush).
    pub fn on_event(&mut self, event: &Event, catalog: &Catalog) -> Option<Notice> {
        match event {
            Event::DownloadFinished { name, .. } => Some(Notice {
                title: "Download finished".into(),
                body: name.clone(),
            }),
            Event::DownloadFailed { reason, .. } => Some(Notice {
                title: "Download failed".into(),
                body: reason.clone(),
            }),
            Event::ContactSharesChanged { jid } => {
                let shares: Vec<_> = catalog
                    .contact(jid)
                    .map(|c| c.resources.into_iter().flat_map(|r| r.shares).collect())
                    .unwrap_or_default();
                let now: HashSet<InfoHash> = shares.iter().map(|s| s.hash).collect();
                if let Some(before) = self.known.get(jid) {
                    let mut seen = HashSet::new();
                    let fresh: Vec<String> = shares
                        .iter()
                        .filter(|s| !before.contains(&s.hash) && seen.insert(s.hash))
                        .map(|s| s.name.as_str().to_string())
                        .collect();
                    if !fresh.is_empty() {
                        self.pending.entry(jid.clone()).or_default().extend(fresh);
                    }
                }
                self.known.insert(jid.clone(), now);
                None
            }
            _ => None,
        }
    }

    /// One notice per contact with new shares since the last flush.
    pub fn flush(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(jid, names)| Notice {
                title: format!(
                    "{jid} shared {} new {}",
                    names.len(),
                    if names.len() == 1 { "file" } else { "files" }
                ),
                body: list(&names),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_well() {
        let n = |v: &[&str]| list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(n(&["a"]), "a");
        assert_eq!(n(&["a", "b"]), "a and b");
        assert_eq!(n(&["a", "b", "c", "d"]), "a, b and 2 more");
    }
}
