//! The relayed path: a SOCKS5 bytestream proxy (XEP-0065) of an XMPP
//! server. Both sides connect to it naming the same stream (the SHA-1 of
//! the session id and the two full JIDs); the asking side then asks the
//! proxy (over XMPP) to activate it, and the proxy joins the two.
//!
//! Not here: finding the proxy and activating it (`crate::xmpp`), deciding
//! to use it (`net/mod.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the proxy may take to answer.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream's name at the proxy: hex SHA-1 of sid, initiator's full JID
/// and target's full JID (XEP-0065 section 5.3.2).
pub fn stream_name(sid: &str, initiator: &str, target: &str) -> String {
    use sha1w::ISha1;
    let mut h = sha1w::Sha1::new();
    h.update(sid.as_bytes());
    h.update(initiator.as_bytes());
    h.update(target.as_bytes());
    h.finish().iter().map(|b| format!("{b:02x}")).collect()
}

/// Connects to the proxy at `address` and asks it for the stream `name`
/// (SOCKS5, no authentication, CONNECT to the name as a domain, port 0).
pub async fn connect(address: SocketAddr, name: &str) -> Result<TcpStream, String> {
    let talk = async {
        let mut s = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot reach the relay at {address}: {e}"))?;
        let io = |e: std::io::Error| format!("the relay at {address} broke off: {e}");
        s.write_all(&[5, 1, 0]).await.map_err(io)?;
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).await.map_err(io)?;
        if greeting != [5, 0] {
            return Err(format!(
                "the relay at {address} wants an authentication we lack"
            ));
        }
        let mut req = vec![5, 1, 0, 3, name.len() as u8];
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(&[0, 0]);
        s.write_all(&req).await.map_err(io)?;
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await.map_err(io)?;
        if head[1] != 0 {
            return Err(format!(
                "the relay at {address} refused the stream (SOCKS code {})",
                head[1]
            ));
        }
        // The bound address the proxy reports, of whatever type: skipped.
        let rest = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut n = [0u8; 1];
                s.read_exact(&mut n).await.map_err(io)?;
                n[0] as usize + 2
            }
            other => {
                return Err(format!(
                    "the relay at {address} answered address type {other}"
                ))
            }
        };
        let mut skip = vec![0u8; rest];
        s.read_exact(&mut skip).await.map_err(io)?;
        let _ = s.set_nodelay(true);
        Ok(s)
    };
    tokio::time::timeout(PROXY_TIMEOUT, talk)
        .await
        .map_err(|_| format!("the relay at {address} did not answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_name_is_xep_0065s() {
        // SHA-1 of "sid" + "a@x/r" + "b@y/s" (Python's hashlib says so).
        assert_eq!(
            stream_name("sid", "a@x/r", "b@y/s"),
            "2822cf55f1c581427b8cb499cdad5f66e16bddfd"
        );
        assert_ne!(
            stream_name("sid", "a@x/r", "b@y/s"),
            stream_name("sid", "b@y/s", "a@x/r")
        );
    }

    #[tokio::test]
    async fn a_proxy_is_asked_for_the_named_stream() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = proxy.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (mut s, _) = proxy.accept().await.unwrap();
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).await.unwrap();
            s.write_all(&[5, 0]).await.unwrap();
            let mut head = [0u8; 5];
            s.read_exact(&mut head).await.unwrap();
            let mut name = vec![0u8; head[4] as usize + 2];
            s.read_exact(&mut name).await.unwrap();
            s.write_all(&[5, 0, 0, 3, 3, b'a', b'b', b'c', 0, 0])
                .await
                .unwrap();
            s.write_all(b"relayed").await.unwrap();
            String::from_utf8(name[..name.len() - 2].to_vec()).unwrap()
        });
        let name = stream_name("s1", "a@x/r", "b@y/s");
        let mut s = connect(address, &name).await.unwrap();
        let mut got = [0u8; 7];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"relayed");
        assert_eq!(serve.await.unwrap(), name);
    }
}
