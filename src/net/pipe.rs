//! Joins two connections of one BitTorrent peer link: what one side sends
//! is written to the other, both ways, until either side ends.
//!
//! Not `tokio::io::copy_bidirectional`: that passes a half-close on and
//! waits for the other direction to end too. BitTorrent has no half-closed
//! links, and a relay (XEP-0065) need not pass a half-close on: the other
//! end would keep waiting on a link that is gone. Here both connections are
//! closed as soon as either side is done.
//!
//! Through a relay, what librqbit sends is followed by a BitTorrent
//! keep-alive (four zero bytes, between two messages) once it has sent
//! nothing more for [`NUDGE_AFTER`]. Prosody's proxy65 (0.12's
//! `net/server_epoll.lua`: `link` pauses reading while it writes, and
//! `resume` does not look at what luasocket already buffered) can hold
//! the last bytes of a burst until more bytes arrive on that connection:
//! the last block of a download then waited for librqbit to ask again,
//! tens of seconds later. The keep-alive is those "more bytes".

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bytes copied at a time each way.
pub(super) const BUFFER: usize = 256 * 1024;
/// How long what librqbit sends through a relay may pause before a
/// keep-alive follows it.
pub(super) const NUDGE_AFTER: Duration = Duration::from_millis(100);
/// A BitTorrent keep-alive: a message of length zero.
const KEEP_ALIVE: [u8; 4] = [0; 4];

/// Copies between `a` and `b` both ways until either side ends or fails;
/// the caller then drops both (closing them).
pub(super) async fn join(a: &mut TcpStream, b: &mut TcpStream) {
    join_framed(a, b, None).await
}

/// [`join`] for a link from librqbit (`local`) through a relay (`relay`):
/// what librqbit sends is followed by a keep-alive whenever it pauses.
/// `handshake_left`: the bytes of librqbit's handshake still to come
/// (after which its messages start).
pub(super) async fn join_relayed(
    local: &mut TcpStream,
    relay: &mut TcpStream,
    handshake_left: usize,
) {
    join_framed(local, relay, Some(Framing::after(handshake_left))).await
}

async fn join_framed(a: &mut TcpStream, b: &mut TcpStream, framing: Option<Framing>) {
    let (ar, mut aw) = a.split();
    let (br, mut bw) = b.split();
    let mut ar = BufReader::with_capacity(BUFFER, ar);
    let mut br = BufReader::with_capacity(BUFFER, br);
    tokio::select! {
        _ = copy(&mut ar, &mut bw, framing) => {}
        _ = copy(&mut br, &mut aw, None) => {}
    }
}

/// Where a stream of BitTorrent messages is: bytes left of the current
/// unit (the handshake, or a message's body), and of the length prefix
/// being read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Framing {
    body_left: u64,
    prefix: [u8; 4],
    prefix_have: usize,
}

impl Framing {
    fn after(handshake_left: usize) -> Framing {
        Framing {
            body_left: handshake_left as u64,
            prefix: [0; 4],
            prefix_have: 0,
        }
    }

    /// Follows `data`, sent after what was seen so far.
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left.min(data.len() as u64)) as usize;
                self.body_left -= n as u64;
                data = &data[n..];
                continue;
            }
            self.prefix[self.prefix_have] = data[0];
            self.prefix_have += 1;
            data = &data[1..];
            if self.prefix_have == 4 {
                self.body_left = u32::from_be_bytes(self.prefix) as u64;
                self.prefix_have = 0;
            }
        }
    }

    /// Whether a message may start here.
    fn between_messages(&self) -> bool {
        self.body_left == 0 && self.prefix_have == 0
    }
}

/// Copies from `from` to `to` until `from` ends (or either fails); with
/// `framing`, a keep-alive follows whenever `from` pauses between two
/// messages, once per pause.
async fn copy<R, W>(from: &mut R, to: &mut W, mut framing: Option<Framing>)
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut nudge = false;
    loop {
        // (`fill_buf` loses nothing when the wait is cut short.)
        let read = match framing {
            Some(f) if nudge && f.between_messages() => {
                match tokio::time::timeout(NUDGE_AFTER, from.fill_buf()).await {
                    Ok(read) => read,
                    Err(_) => {
                        nudge = false;
                        if to.write_all(&KEEP_ALIVE).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
            _ => from.fill_buf().await,
        };
        let n = match read {
            Ok([]) | Err(_) => return,
            Ok(data) => {
                if to.write_all(data).await.is_err() {
                    return;
                }
                if let Some(f) = framing.as_mut() {
                    f.advance(data);
                    nudge = true;
                }
                data.len()
            }
        };
        from.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connected pair of streams on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (b, _) = listener.accept().await.unwrap();
        (a, b)
    }

    #[test]
    fn messages_are_followed_across_any_split() {
        let mut stream = vec![19u8; 68]; // a handshake
        stream.extend_from_slice(&[0, 0, 0, 5, 4, 0, 0, 0, 9]); // have
        stream.extend_from_slice(&[0, 0, 0, 0]); // keep-alive
        stream.extend_from_slice(&[0, 0, 0, 1, 2]); // interested
        let boundaries = [68, 77, 81, 86];
        for cut in 0..=stream.len() {
            let mut f = Framing::after(68);
            f.advance(&stream[..cut]);
            assert_eq!(f.between_messages(), boundaries.contains(&cut), "at {cut}");
            f.advance(&stream[cut..]);
            assert!(f.between_messages(), "at the end, cut at {cut}");
        }
    }

    /// What arrives at `at` within `wait`.
    async fn read_for(at: &mut TcpStream, wait: std::time::Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, at.read(&mut buf)).await {
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn through_a_relay_a_pause_between_messages_is_followed_by_one_keep_alive() {
        let (mut librqbit, mut local) = pair().await;
        let (mut relay, mut far) = pair().await;
        tokio::spawn(async move { join_relayed(&mut local, &mut relay, 68).await });
        let mut sent = vec![19u8; 68];
        sent.extend_from_slice(&[0, 0, 0, 1, 2]);
        librqbit.write_all(&sent).await.unwrap();
        let mut expected = sent.clone();
        expected.extend_from_slice(&KEEP_ALIVE);
        let wait = NUDGE_AFTER * 5;
        assert_eq!(read_for(&mut far, wait).await, expected, "one keep-alive");
        // Halfway through a message: nothing is added.
        librqbit.write_all(&[0, 0, 0, 9, 7, 1]).await.unwrap();
        assert_eq!(read_for(&mut far, wait).await, vec![0, 0, 0, 9, 7, 1]);
        librqbit.write_all(&[0; 7]).await.unwrap();
        let mut rest = vec![0; 7];
        rest.extend_from_slice(&KEEP_ALIVE);
        assert_eq!(read_for(&mut far, wait).await, rest);
        // The other way, nothing is added.
        far.write_all(&[0, 0, 0, 1, 3]).await.unwrap();
        assert_eq!(read_for(&mut librqbit, wait).await, vec![0, 0, 0, 1, 3]);
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_one_end_closing_closes_the_other() {
        let (mut left, mut left_inner) = pair().await;
        let (mut right_inner, mut right) = pair().await;
        let joined = tokio::spawn(async move { join(&mut left_inner, &mut right_inner).await });
        left.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        right.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
        let big = vec![7u8; 3 * BUFFER + 5];
        right.write_all(&big).await.unwrap();
        let mut back = vec![0u8; big.len()];
        left.read_exact(&mut back).await.unwrap();
        assert!(back == big, "the bytes arrive unchanged");
        // The left end is done (it shuts its sending side): the join ends
        // at once, though the right end never ended its side (a half-close
        // passed on would leave it open until the right end closes too),
        // and the right end finds its connection closed.
        left.shutdown().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), joined)
            .await
            .expect("the join ends when one side is done")
            .unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            right.read_to_end(&mut rest),
        )
        .await
        .expect("the right end is closed, not left waiting")
        .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
