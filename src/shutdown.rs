//! Requests to stop from outside the app: SIGTERM and SIGINT (Ctrl-C) on
//! Unix; on Windows the console's events: Ctrl-C, Ctrl-Break, its window
//! closed, the user logging off, the system shutting down (for the last
//! three Windows waits about five seconds, during which we sign out).
//! `bitweend` and the desktop app both stop on them.

use std::io;

/// The listeners, set up once; [`recv`](Self::recv) as often as needed.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(windows)]
    win: WindowsSignals,
}

#[cfg(windows)]
struct WindowsSignals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    logoff: tokio::signal::windows::CtrlLogoff,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

impl Signals {
    /// Starts listening (inside a tokio runtime).
    pub fn new() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(windows)]
        {
            use tokio::signal::windows as w;
            Ok(Signals {
                win: WindowsSignals {
                    c: w::ctrl_c()?,
                    brk: w::ctrl_break()?,
                    close: w::ctrl_close()?,
                    logoff: w::ctrl_logoff()?,
                    shutdown: w::ctrl_shutdown()?,
                },
            })
        }
        #[cfg(not(any(unix, windows)))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next request; says which it was.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(windows)]
        {
            let w = &mut self.win;
            tokio::select! {
                _ = w.c.recv() => "Ctrl-C",
                _ = w.brk.recv() => "Ctrl-Break",
                _ = w.close.recv() => "the console closing",
                _ = w.logoff.recv() => "the user logging off",
                _ = w.shutdown.recv() => "the system shutting down",
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
