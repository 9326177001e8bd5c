//! Who a share of ours is for (issue 18): everyone (the public list, the
//! default), or only some roster groups and chosen contacts (each such
//! contact's restricted list, `crate::restricted`). Plus the names of the
//! restricted lists on the wire, which both sides compute from the reader's
//! bare JID.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The feature (disco#info and caps) of a client that reads restricted
/// lists and accepts `<changed/>` notices; also the notice's namespace.
pub const NS_RESTRICTED: &str = "urn:bitween:restricted:0";

/// Who sees a share.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every contact: the share is in the public list.
    #[default]
    Everyone,
    /// Only contacts in one of `groups` (roster groups) or named in
    /// `contacts` (bare JIDs, lower-case). Both empty: nobody but us (a
    /// download of a share that reached us in a restricted list: passing it
    /// on to our contacts would show them what its owner kept from them).
    Only {
        #[serde(default)]
        groups: BTreeSet<String>,
        #[serde(default)]
        contacts: BTreeSet<String>,
    },
}

impl Audience {
    /// Nobody but us.
    pub fn nobody() -> Audience {
        Audience::Only {
            groups: BTreeSet::new(),
            contacts: BTreeSet::new(),
        }
    }

    pub fn is_everyone(&self) -> bool {
        matches!(self, Audience::Everyone)
    }

    /// Whether the contact `jid` (bare), in roster `groups`, may see it.
    pub fn admits(&self, jid: &str, groups: &[String]) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Only {
                groups: allowed,
                contacts,
            } => {
                contacts.contains(&jid.to_lowercase()) || groups.iter().any(|g| allowed.contains(g))
            }
        }
    }

    /// The audience that `targets` name: each a contact's bare JID (one of
    /// `contacts`, compared without case) or else a roster group's name. No
    /// targets: everyone. A target with `@` that is no contact is refused
    /// (a typo would otherwise make a group nobody is in).
    pub fn of_targets(targets: &[String], contacts: &[String]) -> Result<Audience, String> {
        if targets.is_empty() {
            return Ok(Audience::Everyone);
        }
        let (mut groups, mut jids) = (BTreeSet::new(), BTreeSet::new());
        for target in targets {
            let target = target.trim();
            if target.is_empty() || target.chars().any(char::is_control) {
                return Err(format!(
                    "{target:?} names no group or contact: give a roster group's name or a contact's address"
                ));
            }
            let lower = target.to_lowercase();
            if contacts.iter().any(|c| c.to_lowercase() == lower) {
                jids.insert(lower);
            } else if target.contains('@') {
                return Err(format!(
                    "{target} is not in your contacts: add them first, or name a group"
                ));
            } else {
                groups.insert(target.to_string());
            }
        }
        Ok(Audience::Only {
            groups,
            contacts: jids,
        })
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::Everyone => f.write_str("everyone"),
            Audience::Only { groups, contacts } if groups.is_empty() && contacts.is_empty() => {
                f.write_str("only you")
            }
            Audience::Only { groups, contacts } => {
                let names: Vec<&str> = groups
                    .iter()
                    .chain(contacts.iter())
                    .map(String::as_str)
                    .collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

/// The node on an owner's PEP service that holds what `reader` (a bare
/// JID) may see of the owner's restricted shares:
/// `urn:bitween:restricted:0/` and the first 32 lower-case hex digits of
/// SHA-256 of the lower-cased bare JID.
pub fn reader_node(reader: &str) -> String {
    let digest = Sha256::digest(reader.to_lowercase().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{NS_RESTRICTED}/{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_contacts_or_groups() {
        let contacts = vec!["bob@example.org".to_string()];
        let a =
            Audience::of_targets(&["Family".into(), "BOB@example.org".into()], &contacts).unwrap();
        assert!(a.admits("bob@example.org", &[]));
        assert!(a.admits("carol@example.org", &["Family".into()]));
        assert!(!a.admits("carol@example.org", &["Work".into()]));
        assert!(!a.admits("carol@example.org", &["family".into()]));
        assert_eq!(a.to_string(), "Family, bob@example.org");
        assert_eq!(Audience::of_targets(&[], &contacts), Ok(Audience::Everyone));
        let err = Audience::of_targets(&["dave@example.org".into()], &contacts).unwrap_err();
        assert!(err.contains("not in your contacts"), "{err}");
        assert!(Audience::of_targets(&["  ".into()], &contacts).is_err());
        assert!(!Audience::nobody().admits("bob@example.org", &["Family".into()]));
        assert!(Audience::Everyone.admits("anyone@example.org", &[]));
    }

    #[test]
    fn json_is_plain() {
        assert_eq!(
            serde_json::to_string(&Audience::Everyone).unwrap(),
            "\"everyone\""
        );
        let a: Audience = serde_json::from_str(r#"{"only":{"groups":["Family"]}}"#).unwrap();
        assert!(a.admits("x@y", &["Family".into()]));
    }

    #[test]
    fn node_names_ignore_case() {
        let n = reader_node("Bob@Example.org");
        assert_eq!(n, reader_node("bob@example.org"));
        assert!(n.starts_with("urn:bitween:restricted:0/"));
        assert_eq!(n.len(), "urn:bitween:restricted:0/".len() + 32);
    }
}
