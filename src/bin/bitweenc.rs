//! `bitweenc`: the command-line client of a running `bitweend`.
//!
//! It finds the API address and token in the daemon's data dir and calls the
//! JSON-RPC API. Human-readable tables by default, `--json` for scripts (the
//! API's own shapes). Exit codes: 0 ok, 1 the operation failed (the message
//! says why), 2 usage, 3 the daemon is not reachable.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bitween::api::{ErrorKind, Status};
use bitween::events::{Event, Transfer, TransferState};
use bitween::shares::{ContactView, InfoHash, SearchHit, Share};
use bitween::units::human_size;
use bitween::xmpp::{ConnectionState, Contact};
use clap::{Parser, Subcommand};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{json, Value};

/// Control a running bitweend.
#[derive(Debug, Parser)]
#[command(version)]
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
    /// Share files or folders.
    Share {
        paths: Vec<PathBuf>,
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
fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Failure> {
    serde_json::from_value(v.clone())
        .map_err(|e| Failure::Failed(format!("unexpected answer from bitweend: {e}")))
}

fn who(jid: &str, resource: &str, online: bool) -> String {
    format!("{jid}/{resource}{}", if online { "" } else { " (offline)" })
}

fn show(cmd: &Cmd, v: &Value) -> Result<(), Failure> {
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
            let mut rows = vec![vec!["JID".into(), "SUBSCRIPTION".into(), "PENDING".into()]];
            for c in typed::<Vec<Contact>>(v)? {
                let pending = match (c.pending_out, c.pending_in) {
                    (true, _) => "we asked",
                    (_, true) => "they ask",
                    _ => "",
                };
                rows.push(vec![c.jid, wire_name(&c.subscription), pending.into()]);
            }
            print_table(&rows);
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

/// Draws a 30-column progress bar on stderr, overwriting the line.
fn draw_bar(done: u64, total: u64, tail: &str) {
    let frac = if total > 0 {
        (done as f64 / total as f64).min(1.0)
    } else {
        0.0
    };
    let filled = (frac * 30.0) as usize;
    eprint!(
        "\r[{}{}] {:5.1}%  {tail}   ",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        frac * 100.0
    );
    let _ = std::io::stderr().flush();
}

/// Reads bitweend's event stream, handing each event to `on` until it
/// returns an outcome.
async fn follow<T>(
    client: &Client,
    mut on: impl FnMut(&Event) -> Option<Result<T, Failure>>,
) -> Result<T, Failure> {
    let resp = client
        .http
        .get(format!("{}/events", client.base))
        .bearer_auth(&client.token)
        .send()
        .await
        .map_err(|e| {
            Failure::Unreachable(format!("bitweend at {} is not reachable: {e}", client.base))
        })?;
    let mut stream = resp.bytes_stream().eventsource();
    while let Some(message) = stream.next().await {
        let message =
            message.map_err(|e| Failure::Unreachable(format!("the event stream broke: {e}")))?;
        // Events of a newer bitweend that this one does not know are skipped.
        let Ok(ev) = serde_json::from_str::<Event>(&message.data) else {
            continue;
        };
        if let Some(outcome) = on(&ev) {
            return outcome;
        }
    }
    Err(Failure::Unreachable(
        "bitweend closed the event stream (did it exit?)".into(),
    ))
}

/// Follows the event stream until `hash` completes or fails.
async fn wait(client: &Client, hash: &str, json_out: bool) -> Result<Value, Failure> {
    let hash: InfoHash = hash
        .parse()
        .map_err(|e: bitween::shares::Invalid| Failure::Usage(e.to_string()))?;
    let transfers: Vec<Transfer> = typed(&client.call("transfers", json!([])).await?)?;
    let Some(t) = transfers.into_iter().find(|t| t.hash == hash) else {
        return Err(Failure::Failed(format!(
            "no transfer {hash}: start it with `bitweenc download {hash}`"
        )));
    };
    if t.state == TransferState::Seeding {
        return serde_json::to_value(t).map_err(|e| Failure::Failed(e.to_string()));
    }
    let tty = std::io::stderr().is_terminal() && !json_out;
    let end_line = || {
        if tty {
            eprintln!();
        }
    };
    follow(client, |ev| match ev {
        Event::Transfers { transfers } if tty => {
            if let Some(t) = transfers.iter().find(|t| t.hash == hash) {
                draw_bar(
                    t.done_bytes,
                    t.total_bytes,
                    &format!(
                        "{}/s  {} peers",
                        human_size(t.down_bytes_per_sec),
                        t.peers.len()
                    ),
                );
            }
            None
        }
        Event::DownloadFinished { hash: h, .. } if *h == hash => {
            end_line();
            Some(serde_json::to_value(ev).map_err(|e| Failure::Failed(e.to_string())))
        }
        Event::DownloadFailed { hash: h, reason } if *h == hash => {
            end_line();
            Some(Err(Failure::Failed(format!("download failed: {reason}"))))
        }
        _ => None,
    })
    .await
}

/// Shares `paths` one by one; on a terminal, a bar follows the hashing.
async fn share(client: &Client, paths: &[PathBuf], json_out: bool) -> Result<Vec<Value>, Failure> {
    let progress = (std::io::stderr().is_terminal() && !json_out).then(|| {
        let client = client.clone();
        tokio::spawn(async move {
            follow(&client, |ev| {
                if let Event::HashingProgress { path, done, size } = ev {
                    let name = path.rsplit(['/', '\\']).next().unwrap_or("");
                    draw_bar(
                        *done,
                        *size,
                        &format!(
                            "hashing {name}: {} of {}",
                            human_size(*done),
                            human_size(*size)
                        ),
                    );
                }
                None::<Result<(), Failure>>
            })
            .await
        })
    });
    let mut out = Vec::new();
    let mut result = Ok(());
    for p in paths {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        match client.call("share", json!([abs])).await {
            Ok(v) => out.push(v),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Some(task) = progress {
        task.abort();
        eprint!("\r\x1b[K"); // clear the bar's line
    }
    result.map(|()| out)
}

/// `bitweenc verify [HASH]`: one share at a time, each with a progress bar
/// (on a terminal) while it is read, and a line once it is checked.
async fn verify(client: &Client, hash: Option<&str>, json_out: bool) -> Result<(), Failure> {
    let hashes: Vec<String> = match hash {
        Some(h) => vec![h.to_string()],
        None => {
            let shares: Vec<Share> = typed(&client.call("shares", json!([])).await?)?;
            shares.iter().map(|s| s.hash.to_string()).collect()
        }
    };
    let mut all = Vec::new();
    for hash in hashes {
        let progress = (std::io::stderr().is_terminal() && !json_out).then(|| {
            let (client, wanted) = (client.clone(), hash.clone());
            tokio::spawn(async move {
                follow(&client, |ev| {
                    if let Event::Transfers { transfers } = ev {
                        let checking = transfers.iter().find(|t| {
                            t.hash.to_string() == wanted && t.state == TransferState::Checking
                        });
                        if let Some(t) = checking {
                            draw_bar(
                                t.done_bytes,
                                t.total_bytes,
                                &format!("checking {}: {}", t.name, human_size(t.total_bytes)),
                            );
                        }
                    }
                    None::<Result<(), Failure>>
                })
                .await
            })
        });
        let result = client.call("verify", json!([hash])).await;
        if let Some(task) = progress {
            task.abort();
            eprint!("\r\x1b[K");
        }
        let checked: Vec<bitween::api::Verified> = typed(&result?)?;
        for v in checked {
            if !json_out {
                if v.intact {
                    println!("intact   {}", v.name);
                } else {
                    println!(
                        "CHANGED  {} (its files no longer match; it is no longer shared)",
                        v.name
                    );
                }
            }
            all.push(v);
        }
    }
    if json_out {
        println!("{}", serde_json::to_value(&all).unwrap_or_default());
    }
    match all.iter().filter(|v| !v.intact).count() {
        0 => Ok(()),
        n => Err(Failure::Failed(format!(
            "{n} of {} shares changed on disk and are no longer shared; share them again to publish their new content",
            all.len()
        ))),
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
        Cmd::Share { paths } => {
            if paths.is_empty() {
                return Err(Failure::Usage("share needs at least one PATH".into()));
            }
            let out = share(&client, paths, cli.json).await?;
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
