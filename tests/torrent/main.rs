//! Files travelling as BitTorrent between contacts found over XMPP: the
//! whole flow end to end (`transfer`), a hostile seeder's metadata
//! (`hostile_seeder`), an independent client, qBittorrent (`interop`), the
//! engine's state file under concurrent changes (`state_files`), what
//! a restart of `bitweend` reads again (`restart`), shared folders that
//! stay current (`watch`), idle shares loaded when a contact wants one
//! (`idle`), and thousands of small shares added at once (`bulk`). One
//! test binary: `cargo test --test torrent`, or one part, `cargo test
//! --test torrent transfer::`.

mod bulk;
mod hostile_seeder;
mod idle;
mod interop;
mod restart;
mod state_files;
mod transfer;
mod watch;
