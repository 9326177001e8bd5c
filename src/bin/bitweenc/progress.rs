//! `bitweenc`'s long-running commands, with a progress bar on a terminal
//! fed by the daemon's event stream: `share` (hashing), `wait` (a download)
//! and `verify` (a share read again).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use bitween::events::{Event, Transfer, TransferKind, TransferState};
use bitween::shares::InfoHash;
use bitween::units::human_size;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{json, Value};

use super::show::typed;
use super::{Client, Failure};

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
pub(crate) async fn wait(client: &Client, hash: &str, json_out: bool) -> Result<Value, Failure> {
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

/// A progress bar on a terminal (not with `--json`): `draw` is handed
/// every event of the stream until [`end_bar`].
fn start_bar(
    client: &Client,
    json_out: bool,
    mut draw: impl FnMut(&Event) + Send + 'static,
) -> Option<tokio::task::JoinHandle<Result<(), Failure>>> {
    (std::io::stderr().is_terminal() && !json_out).then(|| {
        let client = client.clone();
        tokio::spawn(async move {
            follow(&client, |ev| {
                draw(ev);
                None
            })
            .await
        })
    })
}

/// Stops a bar of [`start_bar`] and clears its line.
fn end_bar(bar: Option<tokio::task::JoinHandle<Result<(), Failure>>>) {
    if let Some(task) = bar {
        task.abort();
        eprint!("\r\x1b[K");
    }
}

/// Shares `paths` one by one, for the groups and contacts `to` names (none:
/// everyone); on a terminal, a bar follows the hashing.
pub(crate) async fn share(
    client: &Client,
    paths: &[PathBuf],
    to: &[String],
    json_out: bool,
) -> Result<Vec<Value>, Failure> {
    let bar = start_bar(client, json_out, |ev| {
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
    });
    let mut out = Vec::new();
    let mut result = Ok(());
    for p in paths {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        match client.call("share", json!([abs, to])).await {
            Ok(v) => out.push(v),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    end_bar(bar);
    result.map(|()| out)
}

/// `bitweenc verify [HASH]`: one share at a time, each with a progress bar
/// (on a terminal) while it is read, and a line once it is checked.
pub(crate) async fn verify(
    client: &Client,
    hash: Option<&str>,
    json_out: bool,
) -> Result<(), Failure> {
    let hashes: Vec<String> = match hash {
        Some(h) => vec![h.to_string()],
        // (Finished downloads are listed as shares too; their pieces were
        // checked as they arrived, and the daemon verifies only shares.)
        None => {
            let transfers: Vec<Transfer> = typed(&client.call("transfers", json!([])).await?)?;
            transfers
                .iter()
                .filter(|t| t.kind == TransferKind::Share)
                .map(|t| t.hash.to_string())
                .collect()
        }
    };
    let mut all = Vec::new();
    for hash in hashes {
        let wanted = hash.clone();
        let bar = start_bar(client, json_out, move |ev| {
            if let Event::Transfers { transfers } = ev {
                let checking = transfers
                    .iter()
                    .find(|t| t.hash.to_string() == wanted && t.state == TransferState::Checking);
                if let Some(t) = checking {
                    draw_bar(
                        t.done_bytes,
                        t.total_bytes,
                        &format!("checking {}: {}", t.name, human_size(t.total_bytes)),
                    );
                }
            }
        });
        let result = client.call("verify", json!([hash])).await;
        end_bar(bar);
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
