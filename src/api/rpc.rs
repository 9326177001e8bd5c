//! The JSON-RPC method table: names (the original's `Api.*`, `bt.*`,
//! `xmpp.*`, a contract kept for its scripts, and ours) mapped to the typed
//! methods of [`Api`], with their parameter names in positional order.
//! Parameters come as an array (positional) or an object (named); results
//! are the typed methods' values as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};

use super::{Api, ApiError, ErrorKind};
use crate::shares::InfoHash;

/// Every method, with its parameter names in positional order.
pub const METHODS: &[(&str, &[&str])] = &[
    ("Api.versions", &[]),
    ("Api.exit", &[]),
    ("bt.get_torrents", &[]),
    ("bt.add_path", &["path"]),
    ("bt.add_torrent_by_hash", &["hash", "save_path"]),
    ("bt.del_torrent", &["hash"]),
    ("xmpp.get_hashes", &[]),
    ("xmpp.get_shares", &[]),
    ("status", &[]),
    ("shares", &[]),
    ("share", &["path", "to"]),
    ("set_audience", &["hash", "to"]),
    ("unshare", &["hash"]),
    ("verify", &["hash"]),
    ("catalog", &["jid"]),
    ("search", &["text", "limit"]),
    ("download", &["hash", "to"]),
    ("transfers", &[]),
    ("pause", &["hash"]),
    ("resume", &["hash"]),
    ("cancel", &["hash", "delete"]),
    ("contacts", &[]),
    ("add_contact", &["jid"]),
    ("accept_contact", &["jid"]),
    ("decline_contact", &["jid"]),
    ("set_groups", &["jid", "groups"]),
    ("add_to_group", &["jid", "group"]),
    ("remove_from_group", &["jid", "group"]),
    ("rename_group", &["from", "to"]),
    ("diagnose", &["jid"]),
];

/// Runs one method. Unknown methods and bad parameters get errors whose
/// message says what is wrong; nothing changes then.
pub async fn call(api: &Api, method: &str, params: Value) -> Result<Value, ApiError> {
    let Some((name, names)) = METHODS.iter().find(|(n, _)| *n == method) else {
        return Err(ApiError::new(
            ErrorKind::MethodNotFound,
            format!("unknown method {method:?}"),
        ));
    };
    let p = Params::new(name, names, params)?;
    match *name {
        "Api.versions" => to_json(&api.versions()),
        "Api.exit" => {
            api.exit();
            done()
        }
        "bt.get_torrents" | "transfers" => to_json(&api.transfers()),
        "bt.add_path" | "share" => {
            let path = PathBuf::from(p.str("path")?);
            to_json(&api.share_for(&path, &p.strings("to")?).await?)
        }
        "set_audience" => api
            .set_audience(&p.hash()?, &p.strings("to")?)
            .await
            .and_then(|()| done()),
        "bt.add_torrent_by_hash" => {
            let to = p.opt_str("save_path")?.map(PathBuf::from);
            api.download(p.hash()?, to).await.and_then(|()| done())
        }
        "download" => {
            let to = p.opt_str("to")?.map(PathBuf::from);
            api.download(p.hash()?, to).await.and_then(|()| done())
        }
        "bt.del_torrent" | "unshare" => api.unshare(&p.hash()?).await.and_then(|()| done()),
        "xmpp.get_hashes" => to_json(&api.hashes()),
        "xmpp.get_shares" => to_json(&api.original_shares()),
        "status" => to_json(&api.status()),
        "shares" => to_json(&api.shares()),
        "catalog" => match p.opt_str("jid")? {
            Some(jid) => to_json(&api.contact(&jid)),
            None => to_json(&api.catalog()),
        },
        "search" => {
            let limit = p.opt_u64("limit")?.map_or(usize::MAX, |n| n as usize);
            to_json(&api.search(&p.str("text")?, limit))
        }
        "verify" => match p.opt_str("hash")? {
            Some(_) => to_json(&api.verify(Some(&p.hash()?)).await?),
            None => to_json(&api.verify(None).await?),
        },
        "pause" => api.pause(&p.hash()?).await.and_then(|()| done()),
        "resume" => api.resume(&p.hash()?).await.and_then(|()| done()),
        "cancel" => api
            .cancel(&p.hash()?, p.bool("delete")?)
            .await
            .and_then(|()| done()),
        "contacts" => to_json(&api.contacts().await?),
        "add_contact" => api.add_contact(&p.str("jid")?).and_then(|()| done()),
        "accept_contact" => api.accept_contact(&p.str("jid")?).and_then(|()| done()),
        "decline_contact" => api.decline_contact(&p.str("jid")?).and_then(|()| done()),
        "diagnose" => to_json(&api.diagnose(&p.str("jid")?).await?),
        "set_groups" => api
            .set_groups(&p.str("jid")?, &p.strings("groups")?)
            .await
            .and_then(|()| done()),
        "add_to_group" => api
            .add_to_group(&p.str("jid")?, &p.str("group")?)
            .await
            .and_then(|()| done()),
        "remove_from_group" => api
            .remove_from_group(&p.str("jid")?, &p.str("group")?)
            .await
            .and_then(|()| done()),
        "rename_group" => to_json(&api.rename_group(&p.str("from")?, &p.str("to")?).await?),
        other => unreachable!("method {other} is listed but not handled"),
    }
}

/// What a method that changes something answers.
fn done() -> Result<Value, ApiError> {
    Ok(json!(true))
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::failed)
}

/// Named parameters, from a JSON-RPC `params` array (positional) or object.
struct Params {
    method: &'static str,
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    fn new(
        method: &'static str,
        names: &[&'static str],
        params: Value,
    ) -> Result<Params, ApiError> {
        let mut values = BTreeMap::new();
        match params {
            Value::Null => {}
            Value::Array(items) => {
                if items.len() > names.len() {
                    return Err(ApiError::params(format!(
                        "{method} takes at most {} parameters ({}), got {}",
                        names.len(),
                        names.join(", "),
                        items.len()
                    )));
                }
                values.extend(names.iter().copied().zip(items));
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let Some(name) = names.iter().find(|n| **n == k) else {
                        return Err(ApiError::params(format!(
                            "{method} has no parameter {k:?} (it takes: {})",
                            names.join(", ")
                        )));
                    };
                    values.insert(*name, v);
                }
            }
            _ => return Err(ApiError::params("params must be an array or an object")),
        }
        Ok(Params { method, values })
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::params(format!(
                "{}: {name} must be a string",
                self.method
            ))),
        }
    }

    fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::params(format!("{}: missing parameter {name}", self.method)))
    }

    /// A list of strings (missing: empty).
    fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let wrong =
            || ApiError::params(format!("{}: {name} must be a list of strings", self.method));
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(wrong))
                .collect(),
            Some(_) => Err(wrong()),
        }
    }

    fn hash(&self) -> Result<InfoHash, ApiError> {
        let s = self.str("hash")?;
        s.parse()
            .map_err(|e| ApiError::params(format!("{}: {e}", self.method)))
    }

    fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::params(format!(
                "{}: {name} must be true or false",
                self.method
            ))),
        }
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::params(format!("{}: {name} must be a whole number", self.method))
            }),
        }
    }
}
