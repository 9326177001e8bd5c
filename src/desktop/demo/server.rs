//! The demo's XMPP server: a throwaway Prosody (the system's `prosody`
//! package) with its config, accounts, rosters, data and log in the demo's
//! folder, listening on a free port of 127.0.0.1 only, without TLS (nothing
//! leaves this computer).
//!
//! The server is a child process that dies with the app: it gets SIGTERM
//! when the app goes away, however that happens (see [`spawn_keeper`]; on
//! Windows it is in a job object that ends it when the app's last handle
//! to the job closes, as the app exits or is killed).

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::DemoError;

/// The demo accounts' domain (a name that never leaves this computer).
pub const DOMAIN: &str = "localhost";
/// How long Prosody may take to open its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Prosody may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the keeper thread knows about the child.
#[derive(Default)]
struct ChildState {
    /// The child exited (it is not reaped yet while this is being set, so
    /// its pid cannot belong to another process while this is false).
    exited: bool,
}

/// How to stop the child: politely, or at once. Windows has no polite
/// way for a child without a console of ours: both terminate it (its data
/// is the demo's throwaway folder).
#[derive(Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// The child's process handle on Windows (valid until the keeper drops the
/// child, which it does only after noting the exit).
#[cfg(windows)]
#[derive(Clone, Copy)]
struct ProcessHandle(std::os::windows::io::RawHandle);
// SAFETY: a process handle may be used from any thread.
#[cfg(windows)]
unsafe impl Send for ProcessHandle {}

/// A running demo Prosody.
pub struct Server {
    dir: PathBuf,
    port: u16,
    pid: u32,
    #[cfg(windows)]
    handle: ProcessHandle,
    state: Arc<(Mutex<ChildState>, Condvar)>,
    keeper: Option<JoinHandle<()>>,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `s` as a Lua string literal's contents (a temporary folder may hold
/// quotes or backslashes).
fn lua_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn config_text(dir: &Path, port: u16) -> String {
    let data = dir.join("data");
    format!(
        r#"-- Bitween's demo server: throwaway, loopback only, plaintext (nothing
-- leaves this computer). Removed with its folder when the demo ends.
daemonize = false
{unix_only}pidfile = "{dir}/prosody.pid"
data_path = "{data}"
certificates = "{dir}/certs"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
log = {{ info = "{dir}/prosody.log" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "pep"; "ping"; "smacks"{posix} }}
modules_disabled = {{ "s2s" }}
VirtualHost "{DOMAIN}"
"#,
        dir = lua_escape(&dir.display().to_string()),
        data = lua_escape(&data.display().to_string()),
        // Prosody's POSIX module, and running as root, exist on Unix only.
        unix_only = if cfg!(unix) {
            "run_as_root = true\n"
        } else {
            ""
        },
        posix = if cfg!(unix) { "; \"posix\"" } else { "" },
    )
}

/// Turns "prosodyctl is not installed" into the fix.
fn not_installed(program: &str, e: io::Error) -> DemoError {
    if e.kind() == io::ErrorKind::NotFound {
        DemoError::NoProsody(format!(
            "the demo needs Prosody, the XMPP server ({program} was not found): \
             install it with `sudo apt install prosody` (scripts/run.sh does this), then try again"
        ))
    } else {
        DemoError::Server(format!("cannot run {program}: {e}"))
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Server {
    /// Writes the config into `dir`, creates `accounts` (user, password),
    /// makes every two of them contacts of each other, starts Prosody and
    /// waits until it accepts connections. Blocking.
    pub fn start(dir: &Path, accounts: &[(&str, &str)]) -> Result<Server, DemoError> {
        fs::create_dir_all(dir.join("data"))
            .and_then(|_| fs::create_dir_all(dir.join("certs")))
            .map_err(|e| DemoError::Server(format!("cannot create {}: {e}", dir.display())))?;
        let mut last = None;
        // A free port can be taken by someone else before Prosody binds it:
        // then it exits at once, and another port is tried.
        for attempt in 0..3 {
            let port = free_port().map_err(|e| {
                DemoError::Server(format!(
                    "no free port on 127.0.0.1 for the demo server: {e}"
                ))
            })?;
            fs::write(dir.join("prosody.cfg.lua"), config_text(dir, port)).map_err(|e| {
                DemoError::Server(format!("cannot write the demo server's config: {e}"))
            })?;
            if attempt == 0 {
                for (user, password) in accounts {
                    register(dir, user, password)?;
                }
                for (i, (a, _)) in accounts.iter().enumerate() {
                    for (b, _) in &accounts[i + 1..] {
                        add_roster_entry(dir, a, b, &[])?;
                        add_roster_entry(dir, b, a, &[])?;
                    }
                }
            }
            match Server::launch(dir, port) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn launch(dir: &Path, port: u16) -> Result<Server, DemoError> {
        let state = Arc::new((Mutex::new(ChildState::default()), Condvar::new()));
        #[cfg_attr(not(windows), allow(unused_variables))]
        let (pid, handle, keeper) = spawn_keeper(dir, state.clone())?;
        let mut server = Server {
            dir: dir.to_path_buf(),
            port,
            pid,
            #[cfg(windows)]
            handle,
            state,
            keeper: Some(keeper),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if server.exited() || Instant::now() > deadline {
                let why = if server.exited() {
                    "exited"
                } else {
                    "did not open its port within 20 s"
                };
                server.stop();
                return Err(DemoError::Server(format!(
                    "the demo's Prosody {why}: {}{}",
                    tail(&dir.join("prosody.out"), 10),
                    tail(&dir.join("prosody.log"), 10)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id of the server (while it runs).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn exited(&self) -> bool {
        self.state.0.lock().unwrap().exited
    }

    /// Sends SIGTERM or SIGKILL (`how`) unless the child already exited
    /// (checked under the lock the keeper holds while it notes the exit,
    /// before it reaps the child: so the pid is still the child's when we
    /// signal it). On Windows: TerminateProcess, for both.
    fn signal(&self, how: Stop) {
        let state = self.state.0.lock().unwrap();
        if !state.exited {
            #[cfg(unix)]
            {
                let signal = match how {
                    Stop::Term => libc::SIGTERM,
                    Stop::Kill => libc::SIGKILL,
                };
                // SAFETY: kill(2) with a pid we own (see above) has no
                // memory effects.
                unsafe {
                    libc::kill(self.pid as libc::pid_t, signal);
                }
            }
            #[cfg(windows)]
            {
                let _ = how;
                // SAFETY: the keeper closes the handle only after noting
                // the exit, which it does under the lock we hold.
                unsafe { crate::windows::terminate(self.handle.0) };
            }
        }
    }

    /// Waits up to `limit` for the child to exit; whether it did.
    fn wait_exit(&self, limit: Duration) -> bool {
        let (lock, cvar) = &*self.state;
        let state = lock.lock().unwrap();
        let (state, _) = cvar
            .wait_timeout_while(state, limit, |s| !s.exited)
            .unwrap();
        state.exited
    }

    /// Stops the server: SIGTERM, and SIGKILL if it has not exited within
    /// a few seconds. Blocking; idempotent.
    pub fn stop(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        self.signal(Stop::Term);
        if !self.wait_exit(STOP_GRACE) {
            tracing::warn!("the demo server did not stop within {STOP_GRACE:?}: killing it");
            self.signal(Stop::Kill);
            self.wait_exit(STOP_GRACE);
        }
        let _ = keeper.join();
        tracing::debug!("the demo server in {} stopped", self.dir.display());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `prosody -F` from a thread of its own that lives exactly as long
/// as the child: it spawns it, waits for it, and ends after it.
///
/// Why a thread: the child asks the kernel for SIGTERM when its parent
/// dies (`PR_SET_PDEATHSIG`), so that a crashed or killed app leaves no
/// server behind. But "parent" there means the *thread* that forked it: a
/// child spawned from a tokio worker would be killed whenever that worker
/// thread happens to end. The keeper thread ends only after the child did,
/// so the signal comes only when the whole process goes away.
///
/// The child also gets a process group of its own, so a Ctrl-C in the
/// terminal reaches only the app, which then stops the demo in order (the
/// demo peer signs out before its server goes).
///
/// On Windows: a new process group too, and a kill-on-close job object in
/// place of the death signal (the keeper holds the job; when the app
/// exits or is killed, Windows closes it and ends the child). Returns the
/// pid, the process handle (Windows) and the keeper.
fn spawn_keeper(
    dir: &Path,
    state: Arc<(Mutex<ChildState>, Condvar)>,
) -> Result<(u32, KeeperHandle, JoinHandle<()>), DemoError> {
    let out = fs::File::create(dir.join("prosody.out"))
        .map_err(|e| DemoError::Server(format!("cannot create the server's log: {e}")))?;
    let err_out = out
        .try_clone()
        .map_err(|e| DemoError::Server(format!("cannot create the server's log: {e}")))?;
    let mut cmd = Command::new("prosody");
    cmd.arg("-F")
        .arg("--config")
        .arg(dir.join("prosody.cfg.lua"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err_out);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        cmd.creation_flags(windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: the closure runs between fork and exec and only calls
        // prctl(2), which is async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let keeper = std::thread::Builder::new()
        .name("demo-prosody".into())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let pid = child.id();
            #[cfg(windows)]
            let job = match crate::windows::KillOnCloseJob::new().and_then(|j| {
                j.assign(&child)?;
                Ok(j)
            }) {
                Ok(job) => Some(job),
                Err(e) => {
                    tracing::warn!("the demo server may outlive a crash of the app: {e}");
                    None
                }
            };
            #[cfg(windows)]
            let handle = ProcessHandle(std::os::windows::io::AsRawHandle::as_raw_handle(&child));
            #[cfg(not(windows))]
            let handle = ();
            let _ = tx.send(Ok((pid, handle)));
            #[cfg(unix)]
            wait_without_reaping(pid);
            // The handle keeps the pid reserved until the child is dropped.
            #[cfg(windows)]
            let _ = child.wait();
            {
                let (lock, cvar) = &*state;
                lock.lock().unwrap().exited = true;
                cvar.notify_all();
            }
            let _ = child.wait();
            #[cfg(windows)]
            drop(job);
        })
        .map_err(|e| DemoError::Server(format!("cannot start a thread: {e}")))?;
    match rx.recv() {
        Ok(Ok((pid, handle))) => Ok((pid, handle, keeper)),
        Ok(Err(e)) => {
            let _ = keeper.join();
            Err(not_installed("prosody", e))
        }
        Err(_) => {
            let _ = keeper.join();
            Err(DemoError::Server("the demo server's thread died".into()))
        }
    }
}

/// What [`spawn_keeper`] hands back to stop the child with besides its pid.
#[cfg(windows)]
type KeeperHandle = ProcessHandle;
#[cfg(not(windows))]
type KeeperHandle = ();

/// Blocks until the child `pid` has exited, leaving it a zombie (not
/// reaped) so that its pid stays reserved until we note the exit.
#[cfg(unix)]
fn wait_without_reaping(pid: u32) {
    loop {
        // SAFETY: waitid(2) writes only into the siginfo we pass.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// `prosodyctl register USER DOMAIN PASSWORD` against the config in `dir`
/// (`prosody.cfg.lua`, data in `data/`); the test harness's Prosody is laid
/// out the same way and uses this too.
pub fn register(dir: &Path, user: &str, password: &str) -> Result<(), DemoError> {
    let out = Command::new("prosodyctl")
        .arg("--config")
        .arg(dir.join("prosody.cfg.lua"))
        .args(["register", user, DOMAIN, password])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_installed("prosodyctl", e))?;
    if !out.status.success() {
        return Err(DemoError::Server(format!(
            "cannot create the account {user}@{DOMAIN} on the local server: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// How Prosody names a user's data file: every byte that is not a letter
/// or digit as `%xx` ("demo-bob" is `demo%2dbob`).
fn prosody_file_name(user: &str) -> String {
    user.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Adds `contact` with subscription "both", in the roster `groups`, to
/// `user`'s stored roster (a Lua table Prosody reads at start) in the
/// server data under `dir`.
pub fn add_roster_entry(
    dir: &Path,
    user: &str,
    contact: &str,
    groups: &[&str],
) -> Result<(), DemoError> {
    let path = dir
        .join("data")
        .join(DOMAIN)
        .join("roster")
        .join(format!("{}.dat", prosody_file_name(user)));
    let write = || -> io::Result<()> {
        fs::create_dir_all(path.parent().expect("a folder"))?;
        let mut entries = match fs::read_to_string(&path) {
            Ok(s) => s
                .trim_start_matches("return {")
                .trim_end()
                .trim_end_matches("};")
                .to_string(),
            Err(_) => "\n  [false] = { version = 1; pending = {}; };\n".to_string(),
        };
        let groups: String = groups
            .iter()
            .map(|g| format!("[\"{}\"] = true; ", lua_escape(g)))
            .collect();
        entries.push_str(&format!(
            "  [\"{contact}@{DOMAIN}\"] = {{ subscription = \"both\"; groups = {{ {groups}}}; }};\n"
        ));
        fs::write(&path, format!("return {{{entries}}};\n"))
    };
    write()
        .map_err(|e| DemoError::Server(format!("cannot write the roster {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_prosody_writes_them() {
        assert_eq!(prosody_file_name("demo-bob"), "demo%2dbob");
        assert_eq!(prosody_file_name("alice"), "alice");
    }

    #[test]
    fn the_config_survives_odd_folder_names() {
        let text = config_text(Path::new(r#"/tmp/a "quoted" \ dir"#), 5999);
        // (Windows joins with a backslash, escaped as any other.)
        let data = if cfg!(windows) {
            r#"data_path = "/tmp/a \"quoted\" \\ dir\\data""#
        } else {
            r#"data_path = "/tmp/a \"quoted\" \\ dir/data""#
        };
        assert!(text.contains(data), "{text}");
        assert!(text.contains("c2s_ports = { 5999 }"));
        assert!(text.contains(r#"interfaces = { "127.0.0.1" }"#));
    }
}
