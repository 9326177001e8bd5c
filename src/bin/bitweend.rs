//! `bitweend`: the headless Bitween backend.
//!
//! For now it logs in, publishes this resource's (still empty) share list,
//! and prints what contacts share as their lists arrive; the BitTorrent
//! engine, the JSON-RPC API and the rest of the flags of the daemon issue
//! join it as they land. SIGINT/SIGTERM retract our entry and exit cleanly.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bitween::events::{Event, EventBus};
use bitween::shares::{Catalog, ResourceShares};
use bitween::xmpp::{self, XmppConfig};
use clap::Parser;

/// Share files with your XMPP contacts (headless backend).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Your account, user@domain.
    #[arg(long)]
    jid: String,
    /// A file holding the password (first line). Otherwise the
    /// BITWEEN_PASSWORD environment variable is used.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The server as host:port; default: the domain's SRV records.
    #[arg(long)]
    server: Option<String>,
    /// Log in without TLS. Only allowed for a server on a loopback address
    /// (a local test server): everything, the password included, travels in
    /// the clear.
    #[arg(long)]
    insecure_plaintext: bool,
    /// The XMPP resource (device name) to use; default: chosen by the server.
    #[arg(long)]
    resource: Option<String>,
}

fn password(args: &Args) -> Result<String, String> {
    match &args.password_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display())),
        None => std::env::var("BITWEEN_PASSWORD").map_err(|_| {
            "no password: pass --password-file FILE or set BITWEEN_PASSWORD".to_string()
        }),
    }
}

/// `--insecure-plaintext` is only for a server on this machine.
fn check_plaintext(args: &Args) -> Result<(), String> {
    if !args.insecure_plaintext {
        return Ok(());
    }
    let host = args
        .server
        .as_deref()
        .and_then(|s| s.rsplit_once(':'))
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'));
    let loopback = match host {
        Some("localhost") => true,
        Some(h) => h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(
            "--insecure-plaintext is only allowed with --server on a loopback address \
             (for example 127.0.0.1:5222): it sends your password in the clear"
                .into(),
        )
    }
}

fn print_contact(catalog: &Catalog, jid: &str) {
    match catalog.contact(jid) {
        None => println!("{jid}: shares nothing"),
        Some(c) => {
            for r in c.resources {
                let state = if r.online { "online" } else { "offline" };
                println!(
                    "{jid}/{} ({state}), reachable at {:?}:",
                    r.resource, r.addresses
                );
                for s in r.shares {
                    println!("  {}  {:>14} bytes  {}", s.hash, s.size, s.name);
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "bitween=info".into()),
        )
        .init();
    let password = match check_plaintext(&args).and_then(|()| password(&args)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bitweend: {e}");
            return ExitCode::from(2);
        }
    };
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let (catalog, writer) = Catalog::new();
    let config = XmppConfig {
        jid: args.jid.clone(),
        password,
        resource: args.resource.clone(),
        server: args.server.clone(),
        insecure_plaintext: args.insecure_plaintext,
    };
    let xmpp = match xmpp::start(config, bus.clone(), writer) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bitweend: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = xmpp.set_local(ResourceShares::default());
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bitweend: cannot listen for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            ev = events.recv() => match ev {
                Ok(Event::ContactSharesChanged { jid }) => print_contact(&catalog, &jid),
                Ok(Event::Disconnected { reason, retrying: false }) => {
                    eprintln!("bitweend: {reason}");
                    xmpp.shutdown().await;
                    return ExitCode::FAILURE;
                }
                Ok(_) | Err(_) => {}
            },
        }
    }
    tracing::info!("signing out");
    xmpp.shutdown().await;
    ExitCode::SUCCESS
}
