//! Roster groups, managed from the app: a contact's groups set, a contact
//! added to or removed from a group (a new group is made by putting a
//! contact in it), a group renamed. They are the account's XMPP roster
//! groups, kept on the server: other clients see the same groups.
//!
//! A group exists only through its members (XMPP has no empty groups), and
//! a rename changes each member's roster item in turn: the server has no
//! rename of its own, so a rename cut short leaves the group split between
//! both names (doing it again finishes it).

use super::{Api, ApiError};
use crate::xmpp::{contact_jid, Contact};

/// The longest group name taken, in bytes.
const MAX_GROUP_NAME: usize = 256;

/// A group name as given: trimmed, not empty, no control characters.
fn group_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::params("a group name cannot be empty"));
    }
    if name.len() > MAX_GROUP_NAME {
        return Err(ApiError::params(format!(
            "the group name {:?}… is too long: at most {MAX_GROUP_NAME} bytes",
            name.chars().take(40).collect::<String>()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::params(format!(
            "the group name {name:?} has control characters; use letters, digits, spaces and punctuation"
        )));
    }
    Ok(name.to_string())
}

impl Api {
    /// The roster item of `jid`, or why there is none.
    async fn roster_contact(&self, jid: &str) -> Result<Contact, ApiError> {
        let bare = contact_jid(jid).map_err(|e| ApiError::params(e.to_string()))?;
        self.contacts()
            .await?
            .into_iter()
            .find(|c| c.jid == bare.to_string())
            .ok_or_else(|| {
                ApiError::params(format!(
                    "{bare} is not in your contacts; add them first (add_contact)"
                ))
            })
    }

    /// Puts the contact `jid` in exactly `groups` (none: in no group).
    pub async fn set_groups(&self, jid: &str, groups: &[String]) -> Result<(), ApiError> {
        let contact = self.roster_contact(jid).await?;
        let mut names = groups
            .iter()
            .map(|g| group_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        names.dedup();
        self.put_in(&contact, names).await
    }

    /// Adds the contact `jid` to `group` (made if no one is in it yet).
    pub async fn add_to_group(&self, jid: &str, group: &str) -> Result<(), ApiError> {
        let group = group_name(group)?;
        let contact = self.roster_contact(jid).await?;
        if contact.groups.contains(&group) {
            return Ok(());
        }
        let mut groups = contact.groups.clone();
        groups.push(group);
        groups.sort();
        self.put_in(&contact, groups).await
    }

    /// Takes the contact `jid` out of `group`.
    pub async fn remove_from_group(&self, jid: &str, group: &str) -> Result<(), ApiError> {
        let group = group_name(group)?;
        let contact = self.roster_contact(jid).await?;
        if !contact.groups.contains(&group) {
            return Ok(());
        }
        let groups = contact.groups.iter().filter(|g| **g != group).cloned();
        self.put_in(&contact, groups.collect()).await
    }

    /// Renames the group `from` to `to` (merged into `to` if that exists),
    /// member by member; how many contacts were moved.
    pub async fn rename_group(&self, from: &str, to: &str) -> Result<usize, ApiError> {
        let (from, to) = (group_name(from)?, group_name(to)?);
        let members: Vec<Contact> = self
            .contacts()
            .await?
            .into_iter()
            .filter(|c| c.groups.contains(&from))
            .collect();
        if members.is_empty() {
            return Err(ApiError::params(format!(
                "no contact is in the group {from:?}"
            )));
        }
        if from == to {
            return Ok(0);
        }
        for contact in &members {
            let mut groups: Vec<String> = contact
                .groups
                .iter()
                .map(|g| if *g == from { to.clone() } else { g.clone() })
                .collect();
            groups.sort();
            groups.dedup();
            self.put_in(contact, groups).await?;
        }
        Ok(members.len())
    }

    async fn put_in(&self, contact: &Contact, groups: Vec<String>) -> Result<(), ApiError> {
        let bare = contact_jid(&contact.jid).map_err(|e| ApiError::params(e.to_string()))?;
        self.svc
            .xmpp
            .set_groups(bare, groups)
            .await
            .map_err(|e| ApiError::failed(format!("cannot change {}'s groups: {e}", contact.jid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_trimmed_and_bad_ones_refused_with_the_reason() {
        assert_eq!(group_name("  Family ").unwrap(), "Family");
        assert_eq!(group_name("Amis 🎉").unwrap(), "Amis 🎉");
        assert!(group_name("   ").unwrap_err().message.contains("empty"));
        assert!(group_name("a\nb").unwrap_err().message.contains("control"));
        let long = "x".repeat(MAX_GROUP_NAME + 1);
        assert!(group_name(&long).unwrap_err().message.contains("too long"));
        assert!(group_name(&"x".repeat(MAX_GROUP_NAME)).is_ok());
    }
}
