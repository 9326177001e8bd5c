//! The XMPP side against a real Prosody and a real ejabberd: publishing and
//! receiving share lists over PEP (`pep`), how the client copes with
//! servers that differ (`servers`), and property tests of the shares
//! payload (`shares_roundtrip`). One test binary: `cargo test --test xmpp`,
//! or one part, `cargo test --test xmpp pep::`.

mod pep;
mod servers;
mod shares_roundtrip;
