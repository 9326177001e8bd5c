//! `bitweend`: the headless Bitween backend.
//!
//! It runs the backend service (XMPP + BitTorrent engine), seeds what is
//! shared, publishes it with this machine's addresses, and prints what
//! contacts share as their lists arrive. The JSON-RPC API and the rest of
//! the daemon issue's flags join it as they land. SIGINT/SIGTERM retract our
//! entry and exit cleanly (on Windows: Ctrl-C, Ctrl-Break and the console's
//! close, logoff and shutdown events).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use bitween::addresses::AddressConfig;
use bitween::api::{http, Api};
use bitween::events::Event;
use bitween::service::{Service, ServiceConfig};
use bitween::shares::Catalog;
use bitween::torrent::EngineConfig;
use bitween::xmpp::XmppConfig;
use clap::Parser;

/// Share files with your XMPP contacts (headless backend).
#[derive(Debug, Parser)]
#[command(name = "bitweend", version)]
struct Args {
    /// Your account, user@domain.
    #[arg(long)]
    jid: Option<String>,
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
    /// A PEM file of certificate authorities to trust beside the system's,
    /// for a server whose certificate comes from a CA of its own.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The XMPP resource (device name) to use; default: one chosen for this
    /// device on first start and kept in the data dir (file `resource`).
    #[arg(long)]
    resource: Option<String>,
    /// Where Bitween keeps its state; default: $XDG_DATA_HOME/bitween.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where downloads go; default: ~/Downloads/Bitween.
    #[arg(long)]
    download_dir: Option<PathBuf>,
    /// The BitTorrent port; 0 (default) picks one and keeps it.
    #[arg(long)]
    bt_port: Option<u16>,
    /// Publish this address (with the BitTorrent port) as well; repeatable.
    /// For example 127.0.0.1 for tests, or a VPN address.
    #[arg(long = "address")]
    addresses: Vec<IpAddr>,
    /// A what-is-my-IP service (URL answering our IPv4 as text); repeatable;
    /// replaces the default list.
    #[arg(long = "ip-service")]
    ip_services: Vec<String>,
    /// Do not look up our public IPv4.
    #[arg(long)]
    no_public_ip: bool,
    /// For network labs only: take addresses in 198.18.0.0/15 (RFC 2544,
    /// the "internet" of test networks) for public ones, from what-is-my-IP
    /// services, a gateway's report and our interfaces. Never on real
    /// networks, where such an address is nobody's.
    #[arg(long)]
    allow_reserved_addresses: bool,
    /// Also publish unique local IPv6 addresses (fc00::/7), for networks
    /// that route them (a VPN, a company network, a lab).
    #[arg(long)]
    publish_ula: bool,
    /// Do not ask the router for a port mapping over UPnP IGD (which
    /// publishes the mapped external address and port).
    #[arg(long)]
    no_upnp: bool,
    /// Where the JSON-RPC API listens (POST /api, GET /events); default
    /// 127.0.0.1:0, port 0 picking one. The address and a fresh token are
    /// written to the data dir (api-address, api-token).
    #[arg(long)]
    api: Option<SocketAddr>,
    /// No longer offered: the API sent its token over plain HTTP. It stays
    /// on loopback; to reach it from another machine, forward it over SSH
    /// (see the README). Passing this flag is an error that says so.
    #[arg(long, hide = true)]
    api_public: bool,
    /// Tests only: unload an own share nobody transfers after this many
    /// seconds instead of the usual few minutes.
    #[arg(long, hide = true)]
    idle_unload_secs: Option<f64>,
    /// Limit uploads to this many bytes per second (default: no limit).
    #[arg(long)]
    upload_limit: Option<std::num::NonZeroU32>,
    /// Do not ask the gateway for a port mapping over NAT-PMP (which
    /// publishes the mapped external port beside the BitTorrent port).
    #[arg(long)]
    no_natpmp: bool,
    /// Never relay through the XMPP servers' bytestream proxies when no
    /// direct or punched path works. Relayed bytes cross the server, whose
    /// operator could read them (BitTorrent is not encrypted), as any
    /// network on a direct path could.
    #[arg(long)]
    no_relay: bool,
    /// Share this file or folder at start (repeatable).
    #[arg(long = "share")]
    shares: Vec<PathBuf>,
    /// The settings file (JSON, keys named like these flags, e.g.
    /// {"jid": "me@example.org", "bt-port": 6881, "address": ["10.8.0.2"]});
    /// default: $XDG_CONFIG_HOME/bitween/bitweend.json. Flags win.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The settings file: the same settings as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    jid: Option<String>,
    password_file: Option<PathBuf>,
    server: Option<String>,
    insecure_plaintext: bool,
    tls_ca: Option<PathBuf>,
    resource: Option<String>,
    data_dir: Option<PathBuf>,
    download_dir: Option<PathBuf>,
    bt_port: Option<u16>,
    address: Vec<IpAddr>,
    ip_service: Vec<String>,
    no_public_ip: bool,
    allow_reserved_addresses: bool,
    publish_ula: bool,
    no_upnp: bool,
    no_natpmp: bool,
    no_relay: bool,
    api: Option<SocketAddr>,
    api_public: bool,
    upload_limit: Option<std::num::NonZeroU32>,
    share: Vec<PathBuf>,
}

/// Fills what the flags left unset from the settings file (flags win). A
/// missing default file is fine; an unreadable or invalid one is an error
/// that names the file.
fn apply_config_file(args: &mut Args) -> Result<(), String> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (bitween::paths::config_file(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot read the settings file {}: {e}",
                path.display()
            ))
        }
    };
    let f: FileConfig = serde_json::from_str(&text)
        .map_err(|e| format!("the settings file {} is invalid: {e}", path.display()))?;
    args.jid = args.jid.take().or(f.jid);
    args.password_file = args.password_file.take().or(f.password_file);
    args.server = args.server.take().or(f.server);
    args.insecure_plaintext |= f.insecure_plaintext;
    args.tls_ca = args.tls_ca.take().or(f.tls_ca);
    args.resource = args.resource.take().or(f.resource);
    args.data_dir = args.data_dir.take().or(f.data_dir);
    args.download_dir = args.download_dir.take().or(f.download_dir);
    args.bt_port = args.bt_port.or(f.bt_port);
    if args.addresses.is_empty() {
        args.addresses = f.address;
    }
    if args.ip_services.is_empty() {
        args.ip_services = f.ip_service;
    }
    args.no_public_ip |= f.no_public_ip;
    args.allow_reserved_addresses |= f.allow_reserved_addresses;
    args.publish_ula |= f.publish_ula;
    args.no_upnp |= f.no_upnp;
    args.no_natpmp |= f.no_natpmp;
    args.no_relay |= f.no_relay;
    args.api = args.api.or(f.api);
    args.api_public |= f.api_public;
    args.upload_limit = args.upload_limit.or(f.upload_limit);
    if args.shares.is_empty() {
        args.shares = f.share;
    }
    Ok(())
}

fn password(args: &Args) -> Result<String, String> {
    match &args.password_file {
        Some(path) => bitween::desktop::secret::load(path)
            .and_then(|p| p.ok_or_else(|| std::io::ErrorKind::NotFound.into()))
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display())),
        None => std::env::var("BITWEEN_PASSWORD").map_err(|_| {
            "no password: pass --password-file FILE or set BITWEEN_PASSWORD".to_string()
        }),
    }
}

/// One line per resource of a contact whose list changed: how many shares
/// and how much (`bitweenc catalog` lists them; a 10,000-share list would
/// flood the terminal on every change).
fn print_contact(catalog: &Catalog, jid: &str) {
    match catalog.contact(jid) {
        None => println!("{jid}: shares nothing"),
        Some(c) => {
            for r in c.resources {
                let state = if r.online { "online" } else { "offline" };
                let bytes: u64 = r.shares.iter().map(|s| s.size).sum();
                println!(
                    "{jid}/{} ({state}, reachable at {:?}): {} shares, {bytes} bytes",
                    r.resource,
                    r.addresses,
                    r.shares.len()
                );
            }
        }
    }
}

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    bitween::memory::limit_malloc_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("bitweend: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let mut args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "bitween=info".into()),
        )
        // Colours only on a terminal, not in log files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let password = match apply_config_file(&mut args)
        .and_then(|()| {
            args.jid.is_some().then_some(()).ok_or_else(|| {
                "no account: pass --jid user@domain (or set \"jid\" in the settings file)"
                    .to_string()
            })
        })
        .and_then(|()| password(&args))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bitweend: {e}");
            return ExitCode::from(2);
        }
    };
    let config = ServiceConfig {
        xmpp: XmppConfig {
            jid: args.jid.clone().unwrap_or_default(),
            password,
            resource: args.resource.clone(),
            server: args.server.clone(),
            insecure_plaintext: args.insecure_plaintext,
            tls_ca: args.tls_ca.clone(),
        },
        engine: EngineConfig {
            data_dir: args
                .data_dir
                .clone()
                .unwrap_or_else(bitween::paths::data_dir),
            download_dir: args
                .download_dir
                .clone()
                .unwrap_or_else(EngineConfig::default_download_dir),
            listen_port: args.bt_port.unwrap_or(0),
            upload_limit: args.upload_limit,
            download_limit: None,
            allow_loopback_peers: true,
            relay: !args.no_relay,
            idle_unload: args.idle_unload_secs.map_or(
                bitween::torrent::IDLE_UNLOAD,
                std::time::Duration::from_secs_f64,
            ),
        },
        addresses: AddressConfig {
            public_ipv4: !args.no_public_ip,
            allow_reserved: args.allow_reserved_addresses,
            ula: args.publish_ula,
            natpmp: !args.no_natpmp,
            upnp: !args.no_upnp,
            static_addresses: args.addresses.clone(),
            services: if args.ip_services.is_empty() {
                AddressConfig::default().services
            } else {
                args.ip_services.clone()
            },
            ..Default::default()
        },
    };
    let api = args
        .api
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    if !api.ip().is_loopback() || args.api_public {
        eprintln!(
            "bitweend: the API listens on loopback only (--api {api} is not, or --api-public was given): \
             over plain HTTP its token would cross the network readable by anyone on the way. \
             To use it from another machine, forward it over SSH: \
             ssh -N -L 8080:127.0.0.1:PORT you@this-machine, then open http://127.0.0.1:8080/ there"
        );
        return ExitCode::from(2);
    }
    let data_dir = config.engine.data_dir.clone();
    let listener = match tokio::net::TcpListener::bind(api).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bitweend: cannot listen on {api} for the API: {e}");
            return ExitCode::from(2);
        }
    };
    let service = match Service::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bitweend: {e}");
            return ExitCode::from(2);
        }
    };
    let mut events = service.events.subscribe();
    let exit = tokio_util::sync::CancellationToken::new();
    let token = http::new_token();
    let api_addr = listener.local_addr().expect("bound");
    if !api_addr.ip().is_loopback() {
        tracing::warn!(%api_addr, "the API is reachable from other machines");
    }
    if let Err(e) = http::write_discovery(&data_dir, api_addr, &token) {
        eprintln!(
            "bitweend: cannot write the API token to {}: {e}",
            data_dir.display()
        );
        service.shutdown().await;
        return ExitCode::FAILURE;
    }
    tracing::info!(
        %api_addr,
        token_file = %http::token_file(&data_dir).display(),
        "JSON-RPC API listening"
    );
    // The web UI, with the token in the fragment (never sent to a server);
    // on stdout only, not in the log.
    println!("bitween web UI: {}", http::browser_url(api_addr, &token));
    tokio::spawn(http::serve(
        Api::new(service.clone(), exit.clone()),
        listener,
        token,
        exit.clone(),
    ));
    for path in &args.shares {
        match service.engine.share(path).await {
            Ok(s) => println!("sharing {} ({} bytes) as {}", s.name, s.size, s.hash),
            Err(e) => eprintln!("bitweend: {e}"),
        }
    }
    let mut signals = match bitween::shutdown::Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bitweend: cannot listen for signals: {e}");
            service.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            why = signals.recv() => {
                tracing::info!("{why}");
                break;
            }
            _ = exit.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(Event::ContactSharesChanged { jid }) => print_contact(&service.catalog, &jid),
                Ok(Event::Disconnected { reason, retrying: false, .. }) => {
                    eprintln!("bitweend: {reason}");
                    service.shutdown().await;
                    return ExitCode::FAILURE;
                }
                Ok(_) | Err(_) => {}
            },
        }
    }
    tracing::info!("signing out");
    exit.cancel();
    service.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_settings_file_takes_the_lab_and_tls_keys_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bitweend.json");
        std::fs::write(
            &file,
            r#"{"jid": "alice@lab.example", "tls-ca": "/srv/lab/ca.pem",
                "allow-reserved-addresses": true, "publish-ula": true, "no-upnp": true}"#,
        )
        .unwrap();
        let mut args = Args::parse_from(["bitweend", "--config", file.to_str().unwrap()]);
        apply_config_file(&mut args).unwrap();
        assert_eq!(args.tls_ca.as_deref(), Some(Path::new("/srv/lab/ca.pem")));
        assert!(args.allow_reserved_addresses && args.publish_ula && args.no_upnp);
        let mut args = Args::parse_from([
            "bitweend",
            "--config",
            file.to_str().unwrap(),
            "--tls-ca",
            "/other.pem",
        ]);
        apply_config_file(&mut args).unwrap();
        assert_eq!(args.tls_ca.as_deref(), Some(Path::new("/other.pem")));
        // Off by default.
        let plain = Args::parse_from(["bitweend"]);
        assert!(!plain.allow_reserved_addresses && plain.tls_ca.is_none());
    }
}
