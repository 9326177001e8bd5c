//! The memory of a `bitweend` under a hostile contact who publishes list
//! after list of the most shares a resource may hold, through a raw client.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bitween::shares::chunks::{self, More};
use bitween::shares::{to_element, ResourceShares, Share, UserShares};
use bitween_testkit::{Prosody, DOMAIN};
use minidom::Element;

use crate::daemon::{api_online, bitweend, proc_mib};
use crate::{row, secs, thousands, Sizes, HOSTILE_BOUND_MB};

/// A contact (mallory, a bare XMPP client) publishes list after list, each
/// under a resource name not used before, each pointing at the most chunks
/// a reader fetches, every chunk filled to the size limit. Each list is
/// left in place until the daemon (erin) shows shares of it, then its
/// chunk nodes are deleted (which keeps the server's memory flat). The
/// daemon's peak RSS, after the first list and after the last.
pub async fn hostile_row(http: &reqwest::Client, dir: &Path, sizes: &Sizes) {
    let server = Prosody::start(&["erin", "mallory"], &[("erin", "mallory")]);
    let data = dir.join("erin");
    let mut child = bitweend(&server, "erin", &data, &[]).spawn().unwrap();
    let api = api_online(http, &data, &mut child).await;
    let pid = child.id();
    let mut mallory = RawClient::login(&server, "mallory").await;
    // How many shares fill one chunk (names of one length in every list).
    let per_chunk = chunks::split(&hostile_list(0, 5_000))
        .expect("a few chunks")
        .first()
        .expect("one chunk")
        .len();
    let per_list = per_chunk * usize::from(sizes.hostile_chunks);
    let (mut after_first, mut missed) = (0.0, 0);
    let t = Instant::now();
    for k in 0..sizes.hostile_lists {
        let resource = format!("device{k:04}");
        let list = hostile_list(k, per_list);
        let parts = chunks::split(&list).expect("within the chunk limit");
        assert_eq!(parts.len(), usize::from(sizes.hostile_chunks));
        let version = chunks::version_of(&list);
        let nodes: Vec<String> = (1..=parts.len() as u16)
            .map(|n| chunks::chunk_node(&resource, n))
            .collect();
        let started = Instant::now();
        mallory
            .sets(
                nodes
                    .iter()
                    .zip(&parts)
                    .map(|(node, part)| publish(node, chunks::chunk_element(&version, part)))
                    .collect(),
            )
            .await;
        let item = UserShares {
            resources: [(
                resource.clone(),
                ResourceShares {
                    shares: vec![],
                    addresses: vec!["127.0.0.1:1".parse().unwrap()],
                    more: Some(More {
                        version,
                        chunks: parts.len() as u16,
                        total: list.len() as u32,
                    }),
                },
            )]
            .into(),
        };
        drop((list, parts));
        let published = started.elapsed();
        mallory
            .sets(vec![publish(bitween::NS_SHARES, to_element(&item))])
            .await;
        // Until erin shows shares of this list (or gives up on it).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !api.has_hit(&format!("list {k:04} file")).await {
            if Instant::now() > deadline {
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shown = started.elapsed();
        if k == 0 {
            after_first = proc_mib(pid, "VmHWM:");
        }
        mallory
            .sets(nodes.iter().map(|n| delete_node(n)).collect())
            .await;
        // Progress, on stderr (not a figure).
        eprintln!(
            "hostile list {k}: chunks published after {}, shown after {}, deleted after {}; peak RSS so far {:.0} MiB",
            secs(published),
            secs(shown),
            secs(started.elapsed()),
            proc_mib(pid, "VmHWM:")
        );
    }
    let elapsed = t.elapsed();
    let (peak, now) = (proc_mib(pid, "VmHWM:"), proc_mib(pid, "VmRSS:"));
    let _ = child.kill();
    let _ = child.wait();
    mallory.end().await;
    let shown = if missed == 0 {
        String::new()
    } else {
        format!("; {missed} lists never showed")
    };
    row(
        &format!(
            "bitweend under a hostile contact: {} lists in {}, each under a fresh resource name with {} chunks of {} shares (filled to the size limit): peak RSS",
            sizes.hostile_lists,
            secs(elapsed),
            sizes.hostile_chunks,
            thousands(per_chunk as u64),
        ),
        &format!("< {HOSTILE_BOUND_MB:.0} MB"),
        format!("{peak:.0} MiB (after the first list {after_first:.0} MiB; now {now:.0} MiB{shown})"),
        // A list that never showed was not read: the figure would not be
        // what it says.
        Some(peak * 1.048_576 < HOSTILE_BOUND_MB && missed == 0),
    );
}

/// List `k` of the hostile contact: `n` shares with names of one length.
fn hostile_list(k: u32, n: usize) -> Vec<Share> {
    (0..n)
        .map(|i| {
            Share::from_wire(
                &format!("{k:08x}{i:032x}"),
                &format!("hostile list {k:04} file {i:06}.bin"),
                "1000000",
            )
            .unwrap()
        })
        .collect()
}

const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";

/// `<pubsub><publish node><item id="current">payload</item></publish></pubsub>`.
fn publish(node: &str, payload: Element) -> Element {
    Element::builder("pubsub", NS_PUBSUB)
        .append(
            Element::builder("publish", NS_PUBSUB)
                .attr("node".try_into().unwrap(), node)
                .append(
                    Element::builder("item", NS_PUBSUB)
                        .attr("id".try_into().unwrap(), "current")
                        .append(payload)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Deletes one of our own PEP nodes.
fn delete_node(node: &str) -> Element {
    let owner = "http://jabber.org/protocol/pubsub#owner";
    Element::builder("pubsub", owner)
        .append(
            Element::builder("delete", owner)
                .attr("node".try_into().unwrap(), node)
                .build(),
        )
        .build()
}

/// A bare tokio-xmpp client, for what our own client would never send.
struct RawClient {
    client: tokio_xmpp::Client,
    server: String,
    user: String,
    next_id: u64,
}

impl RawClient {
    async fn login(server: &Prosody, user: &str) -> RawClient {
        RawClient {
            client: Self::connect(&server.server(), user).await,
            server: server.server(),
            user: user.to_string(),
            next_id: 0,
        }
    }

    async fn connect(server: &str, user: &str) -> tokio_xmpp::Client {
        use futures::StreamExt;
        let mut client = tokio_xmpp::Client::new_plaintext(
            tokio_xmpp::jid::BareJid::new(&format!("{user}@{DOMAIN}")).unwrap(),
            bitween_testkit::PASSWORD,
            tokio_xmpp::connect::DnsConfig::addr(server),
            tokio_xmpp::xmlstream::Timeouts::tight(),
        );
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = client.next().await {
                if ev.is_online() {
                    return;
                }
            }
            panic!("{user}'s raw client ended before it was online");
        })
        .await
        .expect("the raw client logs in within 20 s");
        client
    }

    /// Sends every IQ set at once, then waits for every answer (matched by
    /// id). Each of them is idempotent, so when no answer has come for 10 s
    /// the missing ones are sent again, by a fresh client: tokio-xmpp's
    /// client now and then never yields an answer that its stream received
    /// (Prosody's log shows the result sent and acknowledged; see also
    /// tests/xmpp/pep/raw.rs).
    async fn sets(&mut self, payloads: Vec<Element>) {
        use futures::StreamExt;
        use tokio_xmpp::parsers::iq::Iq;
        let mut waiting: HashMap<String, Element> = HashMap::new();
        let mut to_send: Vec<Element> = payloads;
        for _attempt in 0..3 {
            for payload in to_send.drain(..) {
                self.next_id += 1;
                let id = format!("hostile-{}", self.next_id);
                let iq = Iq::Set {
                    from: None,
                    to: None,
                    id: id.clone(),
                    payload: payload.clone(),
                };
                self.client
                    .send_stanza(iq.into())
                    .await
                    .expect("the raw client sends");
                waiting.insert(id, payload);
            }
            // Answers come one after the other: a quiet spell means stuck.
            while !waiting.is_empty() {
                match tokio::time::timeout(Duration::from_secs(10), self.client.next()).await {
                    Ok(Some(tokio_xmpp::Event::Stanza(tokio_xmpp::Stanza::Iq(iq)))) => {
                        if let Iq::Error { error, .. } = &iq {
                            panic!("the server refused a hostile IQ: {error:?}");
                        }
                        waiting.remove(iq.id());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("the raw client's stream ended"),
                    Err(_) => break,
                }
            }
            if waiting.is_empty() {
                return;
            }
            eprintln!(
                "{}'s raw client: {} IQs unanswered after 10 s without an answer; sending them again from a fresh client",
                self.user,
                waiting.len()
            );
            to_send = waiting.drain().map(|(_, p)| p).collect();
            let fresh = Self::connect(&self.server, &self.user).await;
            let _ = std::mem::replace(&mut self.client, fresh).send_end().await;
        }
        panic!("no answer to {} IQs after three tries", to_send.len());
    }

    async fn end(self) {
        let _ = self.client.send_end().await;
    }
}
