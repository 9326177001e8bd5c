//! TCP simultaneous open ("hole punching"): both sides dial each other from
//! a port they told the other beforehand, over and over for a few seconds.
//! Each side's SYN opens its own NAT mapping or stateful firewall for the
//! other's; once one gets through, the two SYNs meet and the connection
//! opens on both sides at once. It works through NATs that keep the source
//! port and through firewalls that drop unsolicited inbound (most home
//! IPv6). Where the router picks ports at random, the other side dials the
//! wrong one and this fails: the relay is the way then.
//!
//! The port is a fresh one, not the BitTorrent listen port: Linux refuses a
//! second socket on a port someone listens on, and with port-preserving
//! NAT any port of ours is as good once the other side knows it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long one attempt waits (the kernel resends a SYN after a second).
const ATTEMPT: Duration = Duration::from_millis(1500);
/// The pause between attempts to one address.
const PAUSE: Duration = Duration::from_millis(100);

fn socket_for(local: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if local.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
    socket.set_reuseport(true)?;
    socket.bind(local)?;
    Ok(socket)
}

/// A free local port for punching over IPv4 or IPv6 (`ipv6`).
pub fn free_port(ipv6: bool) -> std::io::Result<u16> {
    let any: IpAddr = if ipv6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    socket_for(SocketAddr::new(any, 0))?
        .local_addr()
        .map(|a| a.port())
}

/// Dials `remote` from `port` again and again until `window` ends.
async fn keep_dialing(
    port: u16,
    remote: SocketAddr,
    window: Duration,
) -> Result<TcpStream, String> {
    let any: IpAddr = if remote.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let local = SocketAddr::new(any, port);
    let end = tokio::time::Instant::now() + window;
    let mut last = String::from("no attempt");
    while tokio::time::Instant::now() < end {
        let attempt = async {
            let socket = socket_for(local).map_err(|e| e.to_string())?;
            socket.connect(remote).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(ATTEMPT, attempt).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
            Err(_) => last = "no answer".into(),
        }
        tokio::time::sleep(PAUSE).await;
    }
    Err(format!("{remote}: {last}"))
}

/// Punches from `port` (IPv4) and `port6` (IPv6) to every one of
/// `remotes` at once; the first connection wins.
pub async fn punch(
    port: Option<u16>,
    port6: Option<u16>,
    remotes: &[SocketAddr],
    window: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    let mut attempts: FuturesUnordered<_> = remotes
        .iter()
        .filter_map(|r| {
            let local = if r.is_ipv6() { port6 } else { port }?;
            let r = *r;
            Some(async move { (r, keep_dialing(local, r, window).await) })
        })
        .collect();
    if attempts.is_empty() {
        return Err("no address of the contact to punch to from our addresses".into());
    }
    let mut errors = Vec::new();
    while let Some((remote, result)) = attempts.next().await {
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, remote));
            }
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dialing_from_a_chosen_port_reaches_a_listener_that_appears_later() {
        let port = free_port(false).unwrap();
        // The other side is not there yet: attempts are refused, then one
        // gets through once it listens.
        let target: SocketAddr = format!("127.0.0.1:{}", free_port(false).unwrap())
            .parse()
            .unwrap();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let listener = tokio::net::TcpListener::bind(target).await.unwrap();
            let (_, from) = listener.accept().await.unwrap();
            from
        });
        let (stream, remote) = punch(Some(port), None, &[target], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(remote, target);
        assert_eq!(stream.local_addr().unwrap().port(), port);
        assert_eq!(
            late.await.unwrap().port(),
            port,
            "dialed from the chosen port"
        );
        let err = punch(
            Some(port),
            None,
            &["127.0.0.1:9".parse().unwrap()],
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.contains("127.0.0.1:9"), "{err}");
        assert!(punch(
            Some(port),
            None,
            &["[::1]:9".parse().unwrap()],
            Duration::from_secs(1)
        )
        .await
        .is_err());
    }
}
