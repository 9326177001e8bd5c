//! `bitweenc`'s human-readable output: tables and lines for each
//! command's answer (`--json` prints the API's own shapes instead).

use bitween::api::Status;
use bitween::events::Transfer;
use bitween::shares::{ContactView, SearchHit, Share};
use bitween::units::human_size;
use bitween::xmpp::{ConnectionState, Contact};
use serde_json::Value;

use super::{Cmd, Failure};

fn print_table(rows: &[Vec<String>]) {
    let Some(first) = rows.first() else { return };
    let widths: Vec<usize> = (0..first.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Reads a result as the API's own type.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Failure> {
    serde_json::from_value(v.clone())
        .map_err(|e| Failure::Failed(format!("unexpected answer from bitweend: {e}")))
}

fn who(jid: &str, resource: &str, online: bool) -> String {
    format!("{jid}/{resource}{}", if online { "" } else { " (offline)" })
}

pub(crate) fn show(cmd: &Cmd, v: &Value) -> Result<(), Failure> {
    match cmd {
        Cmd::Status => {
            let st: Status = typed(v)?;
            println!("account:     {}", st.jid);
            let connection = match st.connection {
                ConnectionState::Online { jid } => format!("online as {jid}"),
                ConnectionState::Offline { reason, retrying } => {
                    format!(
                        "offline: {reason}{}",
                        if retrying { " (retrying)" } else { "" }
                    )
                }
                ConnectionState::Connecting => "connecting".to_string(),
            };
            println!("connection:  {connection}");
            println!("bt port:     {}", st.bt_port);
            let addrs: Vec<String> = st.addresses.iter().map(ToString::to_string).collect();
            println!(
                "published:   {}",
                if addrs.is_empty() {
                    "(none)".into()
                } else {
                    addrs.join(", ")
                }
            );
            println!(
                "catalog:     {} shares from {} contacts",
                st.catalog.shares, st.catalog.contacts
            );
            let r = &st.restricted;
            let restricted = match (r.state.as_str(), &r.reason) {
                ("published", _) => format!("published for {} contact(s)", r.readers),
                ("none", _) | ("", _) => "none".to_string(),
                (state, Some(reason)) => format!("{state}: {reason}"),
                (state, None) => state.to_string(),
            };
            println!("restricted:  {restricted}");
        }
        Cmd::Shares => {
            let mut rows = vec![vec!["HASH".into(), "SIZE".into(), "NAME".into()]];
            for x in typed::<Vec<Share>>(v)? {
                rows.push(vec![
                    x.hash.to_hex(),
                    human_size(x.size),
                    x.name.to_string(),
                ]);
            }
            print_table(&rows);
        }
        Cmd::Search { .. } => {
            let mut rows = vec![vec![
                "HASH".into(),
                "SIZE".into(),
                "NAME".into(),
                "FROM".into(),
            ]];
            for x in typed::<Vec<SearchHit>>(v)? {
                rows.push(vec![
                    x.share.hash.to_hex(),
                    human_size(x.share.size),
                    x.share.name.to_string(),
                    who(&x.jid, &x.resource, x.online),
                ]);
            }
            print_table(&rows);
        }
        Cmd::Catalog => {
            let mut rows = vec![vec![
                "CONTACT".into(),
                "HASH".into(),
                "SIZE".into(),
                "NAME".into(),
            ]];
            for c in typed::<Vec<ContactView>>(v)? {
                for r in c.resources {
                    let from = who(&c.jid, &r.resource, r.online);
                    for x in r.shares {
                        rows.push(vec![
                            from.clone(),
                            x.hash.to_hex(),
                            human_size(x.size),
                            x.name.to_string(),
                        ]);
                    }
                }
            }
            print_table(&rows);
        }
        Cmd::Transfers => {
            let mut rows = vec![vec![
                "HASH".into(),
                "KIND".into(),
                "STATE".into(),
                "DONE".into(),
                "PEERS (PATH)".into(),
                "NAME".into(),
                "ON DISK".into(),
            ]];
            for t in typed::<Vec<Transfer>>(v)? {
                let pct = (t.done_bytes * 100).checked_div(t.total_bytes).unwrap_or(0);
                rows.push(vec![
                    t.hash.to_hex(),
                    wire_name(&t.kind),
                    wire_name(&t.state),
                    format!("{pct}% of {}", human_size(t.total_bytes)),
                    t.peers
                        .iter()
                        .map(|p| match (&p.path, &p.via) {
                            (_, Some(via)) => format!("{} via {via}", wire_name(&p.path)),
                            (path, None) => wire_name(path),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    match &t.listed_name {
                        Some(listed) => format!("{} (listed as {listed})", t.name),
                        None => t.name.clone(),
                    },
                    t.path.display().to_string(),
                ]);
            }
            print_table(&rows);
        }
        Cmd::Contacts => {
            let mut rows = vec![vec![
                "JID".into(),
                "SUBSCRIPTION".into(),
                "PENDING".into(),
                "GROUPS".into(),
            ]];
            for c in typed::<Vec<Contact>>(v)? {
                let pending = match (c.pending_out, c.pending_in) {
                    (true, _) => "we asked",
                    (_, true) => "they ask",
                    _ => "",
                };
                rows.push(vec![
                    c.jid,
                    wire_name(&c.subscription),
                    pending.into(),
                    c.groups.join(", "),
                ]);
            }
            print_table(&rows);
        }
        Cmd::GroupRename { from, to } => {
            let moved = v.as_u64().unwrap_or(0);
            println!("{moved} contact(s) moved from {from:?} to {to:?}");
        }
        _ => match v {
            Value::Bool(true) => println!("ok"),
            other => println!(
                "{}",
                serde_json::to_string_pretty(other).unwrap_or_default()
            ),
        },
    }
    Ok(())
}

/// The wire name of one of the API's enums (`seeding`, `both`, ...), as
/// the tables show it.
fn wire_name<T: serde::Serialize>(x: &T) -> String {
    match serde_json::to_value(x) {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}
