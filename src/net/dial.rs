//! Direct connections to a contact's published addresses: which to try, in
//! which order, and the first that answers wins (attempts start a moment
//! apart, or at once when the one before failed, as in "happy eyeballs").
//!
//! Not here: deciding whether to connect at all (`net/mod.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

/// The pause before the next address is tried while one is still pending.
const STAGGER: Duration = Duration::from_millis(250);

/// The addresses worth dialing, best first: IPv6 before IPv4, in the order
/// published otherwise. Loopback addresses are dropped unless
/// `allow_loopback` (our own XMPP server is on this machine: tests, demo):
/// a contact's "127.0.0.1" would otherwise make us connect to a program of
/// our own machine.
pub fn order(published: &[SocketAddr], allow_loopback: bool) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = published
        .iter()
        .copied()
        .filter(|a| allow_loopback || !is_loopback(a.ip()))
        .collect();
    out.sort_by_key(|a| !a.is_ipv6()); // stable: keeps the published order
    out
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Connects to the first of `candidates` that answers within `budget`;
/// otherwise says what each attempt got.
pub async fn first_connect(
    candidates: &[SocketAddr],
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    if candidates.is_empty() {
        return Err("no address to try".into());
    }
    let mut queue = candidates.iter().copied();
    let mut inflight = FuturesUnordered::new();
    let mut errors = Vec::new();
    let attempt = |a: SocketAddr| async move { (a, TcpStream::connect(a).await) };
    inflight.push(attempt(queue.next().expect("not empty")));
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                errors.push(format!("no answer within {budget:?}"));
                return Err(errors.join("; "));
            }
            Some((addr, result)) = inflight.next() => match result {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Err(e) => {
                    errors.push(format!("{addr}: {e}"));
                    match queue.next() {
                        Some(next) => inflight.push(attempt(next)),
                        None if inflight.is_empty() => return Err(errors.join("; ")),
                        None => {}
                    }
                }
            },
            _ = tokio::time::sleep(STAGGER), if queue.len() > 0 => {
                if let Some(next) = queue.next() {
                    inflight.push(attempt(next));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_first_and_loopback_only_when_allowed() {
        let a: Vec<SocketAddr> = ["192.0.2.1:1", "127.0.0.1:2", "[2001:db8::1]:3", "[::1]:4"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let strs = |v: Vec<SocketAddr>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(strs(order(&a, false)), ["[2001:db8::1]:3", "192.0.2.1:1"]);
        assert_eq!(
            strs(order(&a, true)),
            ["[2001:db8::1]:3", "[::1]:4", "192.0.2.1:1", "127.0.0.1:2"]
        );
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert!(order(&[mapped], false).is_empty());
    }

    #[tokio::test]
    async fn the_first_that_answers_wins() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // A port nobody listens on (bound, then closed).
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (_, addr) = first_connect(&[closed, good], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(addr, good);
        let err = first_connect(&[closed], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains(&closed.to_string()), "{err}");
    }
}
