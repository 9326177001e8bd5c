//! The lab's internet services: a certificate authority made for the run
//! (openssl), Prosody requiring STARTTLS with a certificate from it and
//! offering a SOCKS5 bytestream proxy (mod_proxy65), what-is-my-IP
//! services that answer the caller's source address (so each home learns
//! its router's public address), and a STUN server (RFC 5389 binding
//! answers, which miniupnpd uses to find its router's public address).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{in_netns, in_ns, run, Lab, DOMAIN, PASSWORD, PROXY_JID, SERVER_V4};

/// The relay's port (mod_proxy65).
pub const PROXY_PORT: u16 = 7777;
/// The STUN server's port (the standard one).
pub const STUN_PORT: u16 = 3478;

/// Makes the run's CA and the server's certificate (for `DOMAIN` and the
/// proxy's name), valid for two days.
pub(crate) fn make_ca(lab: &mut Lab) {
    let d = lab.dir.path();
    let ca_key = d.join("ca.key");
    let ca = d.join("ca.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/O=Bitween network lab/CN=Bitween lab CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    let key = d.join("server.key");
    let csr = d.join("server.csr");
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN={DOMAIN}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    let ext = d.join("server.ext");
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=DNS:{DOMAIN},DNS:{PROXY_JID}\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(d.join("server.pem"))
        .arg("-extfile")
        .arg(&ext));
    lab.ca = ca;
}

/// How Prosody names a node or host in its data folder: every byte that is
/// not a letter or digit as `%xx`.
fn prosody_name(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Starts Prosody in the internet namespace on 198.18.0.1:5222, with the
/// accounts and a mutual roster for each pair of `contacts`, and waits
/// until it accepts connections.
pub(crate) fn start_prosody(lab: &mut Lab, users: &[&str], contacts: &[(&str, &str)]) {
    let d = lab.dir.path().to_path_buf();
    let data = d.join("prosody-data");
    std::fs::create_dir_all(&data).unwrap();
    let config = d.join("prosody.cfg.lua");
    std::fs::write(
        &config,
        format!(
            r#"-- The network lab's Prosody: STARTTLS required, the run's CA.
daemonize = false
run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{data}"
interfaces = {{ "{SERVER_V4}" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
log = {{ debug = "{d}/prosody.log" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "pep"; "ping"; "smacks"; "carbons"; "posix" }}
modules_disabled = {{ "s2s" }}
smacks_hibernation_time = 2
ssl = {{ certificate = "{d}/server.pem"; key = "{d}/server.key"; }}
proxy65_ports = {{ {PROXY_PORT} }}
proxy65_interfaces = {{ "{SERVER_V4}" }}
VirtualHost "{DOMAIN}"
Component "{PROXY_JID}" "proxy65"
    proxy65_address = "{SERVER_V4}"
"#,
            d = d.display(),
            data = data.display(),
        ),
    )
    .unwrap();
    for user in users {
        run(Command::new("prosodyctl")
            .arg("--config")
            .arg(&config)
            .args(["register", user, DOMAIN, PASSWORD])
            .current_dir(&d));
    }
    let roster_dir = data.join(prosody_name(DOMAIN)).join("roster");
    std::fs::create_dir_all(&roster_dir).unwrap();
    for user in users {
        let mut entries = String::from("return {\n  [false] = { version = 1; pending = {}; };\n");
        for (a, b) in contacts {
            let other = if a == user {
                b
            } else if b == user {
                a
            } else {
                continue;
            };
            entries.push_str(&format!(
                "  [\"{other}@{DOMAIN}\"] = {{ subscription = \"both\"; groups = {{}}; }};\n"
            ));
        }
        entries.push_str("};\n");
        std::fs::write(
            roster_dir.join(format!("{}.dat", prosody_name(user))),
            entries,
        )
        .unwrap();
    }
    let out = std::fs::File::create(d.join("prosody-out.log")).unwrap();
    let child = in_ns(&lab.internet, "prosody")
        .arg("-F")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("prosody starts (scripts/test.sh installs it)");
    lab.keep("prosody", child);
    let target: SocketAddr = format!("{SERVER_V4}:5222").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = in_netns(&lab.internet, move || {
            std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok()
        });
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "prosody did not open {target}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The what-is-my-IP services (HTTP on ports 80 and 8080: two, so their
/// answers agree) and STUN, served by this process on sockets of the
/// internet namespace.
pub(crate) fn start_services(lab: &mut Lab) {
    let (http, stun) = in_netns(&lab.internet, || {
        let http: Vec<std::net::TcpListener> = [80u16, 8080]
            .iter()
            .map(|p| {
                let l = std::net::TcpListener::bind((SERVER_V4, *p)).expect("what-is-my-IP port");
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect();
        let stun = std::net::UdpSocket::bind((SERVER_V4, STUN_PORT)).expect("the STUN port");
        stun.set_nonblocking(true).unwrap();
        (http, stun)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for l in http {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            tokio::spawn(serve_what_is_my_ip(l));
        }
        let s = tokio::net::UdpSocket::from_std(stun).unwrap();
        tokio::spawn(serve_stun(s));
    });
    lab.runtime = Some(runtime);
}

/// Answers each HTTP request with the caller's address, as text.
async fn serve_what_is_my_ip(listener: tokio::net::TcpListener) {
    while let Ok((mut conn, peer)) = listener.accept().await {
        tokio::spawn(async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let body = format!("{}\n", peer.ip());
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// A STUN binding response (RFC 5389) telling `peer` its address.
pub fn stun_answer(request: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    if request.len() < 20 || request[0..2] != [0x00, 0x01] || request[4..8] != COOKIE {
        return None;
    }
    let IpAddr::V4(ip) = peer.ip() else {
        return None;
    };
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&[0x01, 0x01, 0x00, 0x0c]);
    out.extend_from_slice(&request[4..20]);
    // XOR-MAPPED-ADDRESS: family IPv4, port and address XORed with the
    // cookie.
    out.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
    let port = peer.port() ^ 0x2112;
    out.extend_from_slice(&port.to_be_bytes());
    for (b, c) in ip.octets().iter().zip(COOKIE) {
        out.push(b ^ c);
    }
    Some(out)
}

async fn serve_stun(socket: tokio::net::UdpSocket) {
    let mut buf = [0u8; 1500];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        if let Some(answer) = stun_answer(&buf[..n], peer) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// Writes `text` to `path` (small helper for config files).
pub fn write(path: &std::path::Path, text: &str) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
