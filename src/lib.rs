//! Bitween's core library: the shares protocol, the contacts' catalog, the
//! XMPP client that publishes and receives share lists over PEP, and our
//! own addresses (what we publish as reachable).
//!
//! Nothing here depends on a GUI toolkit: the desktop shell (`src-tauri/`)
//! and the headless daemon (`src/bin/bitweend.rs`) are thin layers over it.

pub mod addresses;
pub mod api;
pub mod clock;
pub mod desktop;
pub mod events;
pub mod fsutil;
pub mod memory;
pub mod net;
pub mod paths;
pub mod private_file;
pub mod restricted;
pub mod service;
pub mod shares;
pub mod shutdown;
pub mod torrent;
pub mod units;
#[cfg(windows)]
pub mod windows;
pub mod xmpp;

/// The namespace and PEP node name of the shares protocol (`PROTOCOL.md`).
pub const NS_SHARES: &str = "https://xmpp.kwoh.de/protocol/shares";
