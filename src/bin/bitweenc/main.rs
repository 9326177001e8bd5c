//! `bitweenc`: the command-line client of a running `bitweend`.
//!
//! It finds the API address and token in the daemon's data dir and calls the
//! JSON-RPC API. Human-readable tables by default, `--json` for scripts (the
//! API's own shapes). Exit codes: 0 ok, 1 the operation failed (the message
//! says why), 2 usage, 3 the daemon is not reachable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bitween::api::ErrorKind;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

mod progress;
mod show;

use progress::{share, verify, wait};
use show::show;

/// Control a running bitweend.
#[derive(Debug, Parser)]
#[command(name = "bitweenc", version)]
struct Cli {
    /// The daemon's data dir (where it wrote api-address and api-token);
    /// default: $XDG_DATA_HOME/bitween.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Connection state, addresses and ports.
    Status,
    /// Share files or folders: with everyone, or only with the roster
    /// groups and contacts named by `--to` (repeat it for more).
    Share {
        paths: Vec<PathBuf>,
        /// A roster group's name or a contact's address (JID).
        #[arg(long = "to", value_name = "GROUP|JID")]
        to: Vec<String>,
    },
    /// Change who sees a share: `--to GROUP|JID` (repeat it for more) or
    /// `--everyone`.
    Audience {
        hash: String,
        #[arg(long = "to", value_name = "GROUP|JID", conflicts_with = "everyone")]
        to: Vec<String>,
        #[arg(long)]
        everyone: bool,
    },
    /// Stop sharing (the data stays on disk).
    Unshare {
        hash: String,
    },
    /// What we share.
    Shares,
    /// Read every piece of a share (or of every share, one at a time) and
    /// check it against its hashes. A restart trusts a share whose files
    /// kept their size, modification time and identity; this catches a
    /// change that kept them. A share that changed is unshared, and the
    /// exit status is 1.
    Verify {
        hash: Option<String>,
    },
    /// Every contact's shares.
    Catalog,
    /// Search the contacts' shares by name.
    Search {
        text: String,
    },
    /// Download a share from the contacts who have it.
    Download {
        hash: String,
        /// Folder to download into (default: the daemon's download folder).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Shares and downloads with progress.
    Transfers,
    /// Wait until a download completes (progress bar on a terminal).
    Wait {
        hash: String,
    },
    Pause {
        hash: String,
    },
    Resume {
        hash: String,
    },
    /// Cancel a download.
    Cancel {
        hash: String,
        /// Also delete the partial data.
        #[arg(long)]
        delete: bool,
    },
    /// The roster with subscription states.
    Contacts,
    /// Ask someone to become a contact.
    AddContact {
        jid: String,
    },
    /// Put a contact in a roster group (a new group is made this way).
    GroupAdd {
        jid: String,
        group: String,
    },
    /// Take a contact out of a roster group.
    GroupRemove {
        jid: String,
        group: String,
    },
    /// Rename a roster group (every member is moved to the new name).
    GroupRename {
        from: String,
        to: String,
    },
    /// Stop the daemon.
    Exit,
}

enum Failure {
    Usage(String),
    Failed(String),
    Unreachable(String),
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn open(data_dir: &Path) -> Result<Client, Failure> {
        let read = |name: &str| {
            std::fs::read_to_string(data_dir.join(name))
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    Failure::Unreachable(format!(
                        "cannot read {}: {e}; is bitweend running with --data-dir {}?",
                        data_dir.join(name).display(),
                        data_dir.display()
                    ))
                })
        };
        Ok(Client {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| Failure::Failed(e.to_string()))?,
            base: format!("http://{}", read("api-address")?),
            token: read("api-token")?,
        })
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, Failure> {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self
            .http
            .post(format!("{}/api", self.base))
            .bearer_auth(&self.token)
            .json(&req)
            .send()
            .await
            .map_err(|e| {
                Failure::Unreachable(format!("bitweend at {} is not reachable: {e}", self.base))
            })?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| Failure::Failed(format!("bad answer: {e}")))?;
        if let Some(err) = body.get("error") {
            let msg = err["message"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string();
            let kind: Option<ErrorKind> = serde_json::from_value(err["data"]["kind"].clone()).ok();
            return Err(match kind {
                Some(ErrorKind::InvalidParams) => Failure::Usage(msg),
                _ => Failure::Failed(msg),
            });
        }
        Ok(body["result"].clone())
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(bitween::paths::data_dir);
    let client = Client::open(&data_dir)?;
    let (method, params) = match &cli.command {
        Cmd::Status => ("status", json!([])),
        Cmd::Share { paths, to } => {
            if paths.is_empty() {
                return Err(Failure::Usage("share needs at least one PATH".into()));
            }
            let out = share(&client, paths, to, cli.json).await?;
            if cli.json {
                println!("{}", Value::Array(out));
            } else {
                show(&Cmd::Shares, &Value::Array(out))?;
            }
            return Ok(());
        }
        Cmd::Unshare { hash } => ("unshare", json!([hash])),
        Cmd::Verify { hash } => return verify(&client, hash.as_deref(), cli.json).await,
        Cmd::Shares => ("shares", json!([])),
        Cmd::Catalog => ("catalog", json!([])),
        Cmd::Search { text } => ("search", json!([text])),
        Cmd::Download { hash, to } => {
            let to = to
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
            ("download", json!([hash, to]))
        }
        Cmd::Transfers => ("transfers", json!([])),
        Cmd::Wait { hash } => {
            let v = wait(&client, hash, cli.json).await?;
            if cli.json {
                println!("{v}");
            } else {
                println!("complete");
            }
            return Ok(());
        }
        Cmd::Pause { hash } => ("pause", json!([hash])),
        Cmd::Resume { hash } => ("resume", json!([hash])),
        Cmd::Cancel { hash, delete } => ("cancel", json!([hash, delete])),
        Cmd::Contacts => ("contacts", json!([])),
        Cmd::AddContact { jid } => ("add_contact", json!([jid])),
        Cmd::GroupAdd { jid, group } => ("add_to_group", json!([jid, group])),
        Cmd::GroupRemove { jid, group } => ("remove_from_group", json!([jid, group])),
        Cmd::GroupRename { from, to } => ("rename_group", json!([from, to])),
        Cmd::Audience { hash, to, everyone } => {
            if to.is_empty() && !everyone {
                return Err(Failure::Usage(
                    "audience needs --to GROUP|JID (one or more) or --everyone".into(),
                ));
            }
            ("set_audience", json!([hash, to]))
        }
        Cmd::Exit => ("Api.exit", json!([])),
    };
    let v = client.call(method, params).await?;
    if cli.json {
        println!("{v}");
        Ok(())
    } else {
        show(&cli.command, &v)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("bitweenc: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("bitweenc: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("bitweenc: {m}");
            ExitCode::from(3)
        }
    }
}
