//! One interface over the test servers: Prosody and ejabberd, each started
//! privately per test on a loopback port (see `prosody.rs` and `ejabberd.rs`).
//!
//! A test that should hold on every server takes a [`ServerKind`] and is
//! listed in [`on_each_server!`], which makes one test per server:
//! `cargo test --test xmpp pep::contacts_see_published_shares_and_every_change::ejabberd`
//! runs one of them.

use std::path::{Path, PathBuf};

use crate::{Ejabberd, Prosody};

/// Which XMPP server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Prosody,
    Ejabberd,
}

impl ServerKind {
    pub const ALL: [ServerKind; 2] = [ServerKind::Prosody, ServerKind::Ejabberd];

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Prosody => "prosody",
            ServerKind::Ejabberd => "ejabberd",
        }
    }
}

/// The SCRAM hash the server stores passwords with (and so the only SCRAM
/// mechanism it offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    Sha1,
    Sha256,
}

/// What a test may change about its server; the default is each server's
/// usual setup (stream management and carbons on, SCRAM-SHA-1, PLAIN
/// allowed, the server's default stanza limit of 256 KiB).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The most bytes a client may send in one stanza.
    pub stanza_limit: Option<usize>,
    /// XEP-0198 (Prosody's `smacks`, ejabberd's `mod_stream_mgmt`).
    pub stream_management: bool,
    /// XEP-0280 (Prosody's `carbons`, ejabberd's `mod_carboncopy`).
    pub carbons: bool,
    pub scram: Scram,
    /// Offer SASL PLAIN too (both servers do by default).
    pub plain: bool,
    /// Lines added to Prosody's global settings.
    pub prosody_extra: String,
    /// Top-level YAML added to ejabberd's configuration.
    pub ejabberd_extra: String,
    /// Roster groups: (user, contact, group), `user` has `contact` (one of
    /// the mutual contacts) in `group` from the start.
    pub roster_groups: Vec<(String, String, String)>,
    /// Prosody modules of the test's own: (name, Lua source), loaded
    /// before `pep` (so their hooks see PEP requests first).
    pub prosody_plugins: Vec<(String, String)>,
}

impl ServerOptions {
    /// The groups `user` has `contact` in from the start.
    pub(crate) fn groups_of(&self, user: &str, contact: &str) -> Vec<&str> {
        self.roster_groups
            .iter()
            .filter(|(u, c, _)| u == user && c == contact)
            .map(|(_, _, g)| g.as_str())
            .collect()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            stanza_limit: None,
            stream_management: true,
            carbons: true,
            scram: Scram::Sha1,
            plain: true,
            prosody_extra: String::new(),
            ejabberd_extra: String::new(),
            roster_groups: Vec::new(),
            prosody_plugins: Vec::new(),
        }
    }
}

/// What every test server offers.
pub trait XmppServer {
    fn kind(&self) -> ServerKind;
    /// `127.0.0.1:port`.
    fn server(&self) -> String;
    fn port(&self) -> u16;
    /// The server's own log (Prosody at debug level; ejabberd at info, or
    /// debug with `BITWEEN_EJABBERD_DEBUG=1`).
    fn log_path(&self) -> PathBuf;
    /// Stops the server (SIGTERM, then waits).
    fn stop(&mut self);
    /// Starts it again on the same port and data.
    fn start_again(&mut self);
}

impl XmppServer for Prosody {
    fn kind(&self) -> ServerKind {
        ServerKind::Prosody
    }
    fn server(&self) -> String {
        Prosody::server(self)
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn log_path(&self) -> PathBuf {
        Prosody::log_path(self)
    }
    fn stop(&mut self) {
        Prosody::stop(self)
    }
    fn start_again(&mut self) {
        Prosody::start_again(self)
    }
}

impl XmppServer for Ejabberd {
    fn kind(&self) -> ServerKind {
        ServerKind::Ejabberd
    }
    fn server(&self) -> String {
        Ejabberd::server(self)
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn log_path(&self) -> PathBuf {
        Ejabberd::log_path(self)
    }
    fn stop(&mut self) {
        Ejabberd::stop(self)
    }
    fn start_again(&mut self) {
        Ejabberd::start_again(self)
    }
}

/// A test server of either kind.
pub enum Server {
    Prosody(Prosody),
    Ejabberd(Ejabberd),
}

impl Server {
    /// Creates `users` (password `PASSWORD`), makes each pair in `contacts`
    /// mutual contacts, and starts a server of `kind`.
    pub fn start(kind: ServerKind, users: &[&str], contacts: &[(&str, &str)]) -> Server {
        Server::start_with(kind, users, contacts, &ServerOptions::default())
    }

    pub fn start_with(
        kind: ServerKind,
        users: &[&str],
        contacts: &[(&str, &str)],
        options: &ServerOptions,
    ) -> Server {
        match kind {
            ServerKind::Prosody => Server::Prosody(Prosody::start_opts(users, contacts, options)),
            ServerKind::Ejabberd => Server::Ejabberd(Ejabberd::start(users, contacts, options)),
        }
    }

    fn inner(&self) -> &dyn XmppServer {
        match self {
            Server::Prosody(p) => p,
            Server::Ejabberd(e) => e,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn XmppServer {
        match self {
            Server::Prosody(p) => p,
            Server::Ejabberd(e) => e,
        }
    }

    /// The server's own log, read now.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        match self {
            Server::Prosody(p) => p.data_dir(),
            Server::Ejabberd(e) => e.data_dir(),
        }
    }
}

impl XmppServer for Server {
    fn kind(&self) -> ServerKind {
        self.inner().kind()
    }
    fn server(&self) -> String {
        self.inner().server()
    }
    fn port(&self) -> u16 {
        self.inner().port()
    }
    fn log_path(&self) -> PathBuf {
        self.inner().log_path()
    }
    fn stop(&mut self) {
        self.inner_mut().stop()
    }
    fn start_again(&mut self) {
        self.inner_mut().start_again()
    }
}

/// Makes each listed `async fn name(kind: ServerKind)` (or plain `fn`, with
/// `sync:` first) a test per server: `name::prosody` and `name::ejabberd`.
#[macro_export]
macro_rules! on_each_server {
    (sync: $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn prosody() {
                super::$name($crate::ServerKind::Prosody)
            }
            #[test]
            fn ejabberd() {
                super::$name($crate::ServerKind::Ejabberd)
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn prosody() {
                super::$name($crate::ServerKind::Prosody).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn ejabberd() {
                super::$name($crate::ServerKind::Ejabberd).await
            }
        }
    )+};
}
