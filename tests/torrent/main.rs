//! Files travelling as BitTorrent between contacts found over XMPP: the
//! whole flow end to end (`transfer`), a hostile seeder's metadata
//! (`hostile_seeder`), an independent client, qBittorrent (`interop`), and
//! the engine's state file under concurrent changes (`state_files`). One
//! test binary: `cargo test --test torrent`, or one part, `cargo test
//! --test torrent transfer::`.

mod hostile_seeder;
mod interop;
mod state_files;
mod transfer;
