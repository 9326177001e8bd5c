//! The server side of SOCKS5 (RFC 1928) with username/password
//! authentication (RFC 1929), as much of it as librqbit's client uses:
//! CONNECT to an IPv4 or IPv6 address. Reading a request and writing the
//! reply; what to do with the request is the caller's (`net/mod.rs`).
//!
//! Not here: hostnames (librqbit never sends them: refused), BIND and UDP
//! ASSOCIATE (refused).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a client has to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reply codes of RFC 1928 section 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    HostUnreachable = 4,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// Why a client's request was not read.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the client took too long")]
    Timeout,
    #[error("not SOCKS5 (version byte {0})")]
    Version(u8),
    #[error("the client offers no username/password authentication")]
    NoAuth,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("unsupported command {0}")]
    Command(u8),
    #[error("unsupported address type {0}")]
    AddressType(u8),
}

/// Reads the greeting, the credentials and a CONNECT request; answers the
/// first two (and a refusal of what it cannot serve). Returns the target;
/// the caller must then [`reply`].
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    user: &str,
    password: &str,
) -> Result<SocketAddr, SocksError> {
    tokio::time::timeout(REQUEST_TIMEOUT, handshake(s, user, password))
        .await
        .map_err(|_| SocksError::Timeout)?
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    user: &str,
    password: &str,
) -> Result<SocketAddr, SocksError> {
    let [version, n] = read_array(s).await?;
    if version != 5 {
        return Err(SocksError::Version(version));
    }
    let mut methods = vec![0u8; n.into()];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&2) {
        s.write_all(&[5, 0xff]).await?;
        return Err(SocksError::NoAuth);
    }
    s.write_all(&[5, 2]).await?;

    let [_auth_version, ulen] = read_array(s).await?;
    let mut got_user = vec![0u8; ulen.into()];
    s.read_exact(&mut got_user).await?;
    let [plen] = read_array(s).await?;
    let mut got_password = vec![0u8; plen.into()];
    s.read_exact(&mut got_password).await?;
    // Both are random per session; compared in full either way.
    let ok = same(&got_user, user.as_bytes()) & same(&got_password, password.as_bytes());
    s.write_all(&[1, if ok { 0 } else { 1 }]).await?;
    if !ok {
        return Err(SocksError::BadCredentials);
    }

    let [version, command, _reserved, atyp] = read_array(s).await?;
    if version != 5 {
        return Err(SocksError::Version(version));
    }
    let ip: IpAddr = match atyp {
        1 => Ipv4Addr::from(read_array::<_, 4>(s).await?).into(),
        4 => Ipv6Addr::from(read_array::<_, 16>(s).await?).into(),
        other => {
            reply(s, Reply::AddressTypeNotSupported).await?;
            return Err(SocksError::AddressType(other));
        }
    };
    let port = u16::from_be_bytes(read_array(s).await?);
    if command != 1 {
        reply(s, Reply::CommandNotSupported).await?;
        return Err(SocksError::Command(command));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Answers a CONNECT request (the bound address is not meaningful here).
pub async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: Reply) -> std::io::Result<()> {
    s.write_all(&[5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn read_array<S: AsyncRead + Unpin, const N: usize>(s: &mut S) -> std::io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Equality that looks at every byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connect_request_with_credentials_is_read() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let serve = tokio::spawn(async move {
            let target = accept(&mut server, "u", "secret").await.unwrap();
            reply(&mut server, Reply::Succeeded).await.unwrap();
            target
        });
        client.write_all(&[5, 1, 2]).await.unwrap();
        assert_eq!(read_array::<_, 2>(&mut client).await.unwrap(), [5, 2]);
        client.write_all(&[1, 1, b'u', 6]).await.unwrap();
        client.write_all(b"secret").await.unwrap();
        assert_eq!(read_array::<_, 2>(&mut client).await.unwrap(), [1, 0]);
        client
            .write_all(&[5, 1, 0, 1, 10, 0, 0, 7, 0x1a, 0xe1])
            .await
            .unwrap();
        assert_eq!(read_array::<_, 10>(&mut client).await.unwrap()[1], 0);
        assert_eq!(
            serve.await.unwrap(),
            "10.0.0.7:6881".parse::<SocketAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn wrong_credentials_and_hostnames_are_refused() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let serve = tokio::spawn(async move { accept(&mut server, "u", "secret").await });
        client.write_all(&[5, 1, 2, 1, 1, b'u', 5]).await.unwrap();
        client.write_all(b"guess").await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [5, 2, 1, 1]);
        assert!(matches!(
            serve.await.unwrap(),
            Err(SocksError::BadCredentials)
        ));

        let (mut client, mut server) = tokio::io::duplex(256);
        let serve = tokio::spawn(async move { accept(&mut server, "u", "p").await });
        client
            .write_all(&[5, 1, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 3, 3])
            .await
            .unwrap();
        client.write_all(b"abc\x00\x50").await.unwrap();
        let mut answer = [0u8; 14];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[5], Reply::AddressTypeNotSupported as u8);
        assert!(matches!(
            serve.await.unwrap(),
            Err(SocksError::AddressType(3))
        ));

        let (mut client, mut server) = tokio::io::duplex(256);
        let serve = tokio::spawn(async move { accept(&mut server, "u", "p").await });
        client.write_all(&[5, 1, 0]).await.unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [5, 0xff]);
        assert!(matches!(serve.await.unwrap(), Err(SocksError::NoAuth)));
    }
}
