//! Our public IPv4 as seen from outside: ask several what-is-my-IP services
//! at once, parse their (untrusted) answers strictly, and cross-check them.
//!
//! The rule: as soon as two services agree, their answer wins (the others
//! are not waited for); when every service has answered or failed without
//! two agreeing, a lone answer is taken as it is, and among disagreeing
//! answers the first service in the configured list wins. Which rule
//! decided is part of the result and is logged.
//!
//! Not here: when to ask again, caching and retries (the watcher does
//! that), and IPv6 (read from our interfaces: no NAT in the way).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use super::interfaces::{classify_v4, is_public_v4};

/// Longest answer body we read; an IPv4 literal with a newline is 16 bytes.
const MAX_BODY: usize = 64;

pub use crate::events::{PublicIpDecision, Rule, ServiceAnswer, ServiceResult};

/// No service gave a usable answer; one reason per service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no what-is-my-IP service gave a usable answer: {}", summary(.answers))]
pub struct LookupFailed {
    pub answers: Vec<ServiceAnswer>,
}

fn summary(answers: &[ServiceAnswer]) -> String {
    if answers.is_empty() {
        return "no service is configured".into();
    }
    answers
        .iter()
        .map(|a| match &a.result {
            ServiceResult::Failed { reason } => format!("{}: {reason}", a.service),
            other => format!("{}: {other:?}", a.service),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a service's answer: exactly one IPv4 literal, optionally
/// surrounded by whitespace, that is a public (globally routable) address,
/// or one in 198.18.0.0/15 when `allow_reserved` (network labs). Anything
/// else is refused with the reason.
pub fn parse_answer(body: &[u8], allow_reserved: bool) -> Result<Ipv4Addr, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "the answer is not text".to_string())?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    let shown: String = text.chars().take(40).collect();
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("the answer {shown:?} is not an IPv4 address"))?;
    if is_public_v4(ip, allow_reserved) {
        Ok(ip)
    } else {
        Err(format!(
            "the answer {ip} is not a public address ({:?})",
            classify_v4(ip)
        ))
    }
}

/// Applies the cross-check rule to the answers so far. `complete` says
/// whether every service has answered or failed; before that only an
/// agreement decides.
pub fn decide(answers: &[ServiceAnswer], complete: bool) -> Option<(Ipv4Addr, Rule)> {
    let answered: Vec<Ipv4Addr> = answers
        .iter()
        .filter_map(|a| match a.result {
            ServiceResult::Answered { ip } => Some(ip),
            _ => None,
        })
        .collect();
    let mut counts: HashMap<Ipv4Addr, usize> = HashMap::new();
    for ip in &answered {
        *counts.entry(*ip).or_default() += 1;
    }
    // The most agreed-on answer; on a tie, the one first in the list.
    let best = answered
        .iter()
        .copied()
        .filter(|ip| counts[ip] >= 2)
        .max_by_key(|ip| {
            let first = answered.iter().position(|x| x == ip).unwrap_or(0);
            (counts[ip], std::cmp::Reverse(first))
        });
    if let Some(ip) = best {
        return Some((ip, Rule::TwoAgree));
    }
    if !complete {
        return None;
    }
    match answered.as_slice() {
        [] => None,
        [only] => Some((*only, Rule::OnlyOneAnswered)),
        [first, ..] => Some((*first, Rule::FirstInList)),
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Asks a list of what-is-my-IP services over IPv4.
#[derive(Debug, Clone)]
pub struct PublicIpLookup {
    client: reqwest::Client,
    services: Vec<String>,
    timeout: Duration,
    allow_reserved: bool,
}

impl PublicIpLookup {
    /// A lookup over `services` (http:// or https:// URLs), each given
    /// `timeout` to answer in full. Requests leave from an IPv4 socket, ignore
    /// proxies (a proxy would report its own address) and follow no
    /// redirects.
    pub fn new(services: Vec<String>, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .user_agent(concat!("bitween/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| describe_error(&e))?;
        Ok(PublicIpLookup {
            client,
            services,
            timeout,
            allow_reserved: false,
        })
    }

    /// Also accepts answers in 198.18.0.0/15 (network labs only).
    pub fn allow_reserved(mut self, allow: bool) -> Self {
        self.allow_reserved = allow;
        self
    }

    async fn ask(&self, url: &str) -> Result<Ipv4Addr, String> {
        let fetch = async {
            let mut resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| describe_error(&e))?;
            if !resp.status().is_success() {
                return Err(format!("HTTP status {}", resp.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe_error(&e))? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(format!("the answer is longer than {MAX_BODY} bytes"));
                }
            }
            parse_answer(&body, self.allow_reserved)
        };
        match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Asks every service at once and decides by the cross-check rule
    /// (module doc). Takes at most the timeout, less when two agree early.
    pub async fn lookup(&self) -> Result<PublicIpDecision, LookupFailed> {
        let mut answers: Vec<ServiceAnswer> = self
            .services
            .iter()
            .map(|s| ServiceAnswer {
                service: s.clone(),
                result: ServiceResult::NotAwaited,
            })
            .collect();
        let mut pending: FuturesUnordered<_> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| async move { (i, self.ask(s).await) })
            .collect();
        let mut decided = None;
        while let Some((i, result)) = pending.next().await {
            answers[i].result = match result {
                Ok(ip) => ServiceResult::Answered { ip },
                Err(reason) => {
                    tracing::debug!(service = %answers[i].service, %reason, "what-is-my-IP service failed");
                    ServiceResult::Failed { reason }
                }
            };
            decided = decide(&answers, pending.is_empty());
            if decided.is_some() {
                break;
            }
        }
        let Some((ip, rule)) = decided else {
            return Err(LookupFailed { answers });
        };
        let decision = PublicIpDecision { ip, rule, answers };
        if decision.disputed() || rule != Rule::TwoAgree {
            tracing::warn!(
                %ip,
                ?rule,
                answers = ?decision.answers,
                "public IPv4 decided: {rule}"
            );
        } else {
            tracing::info!(%ip, ?rule, "public IPv4 decided: {rule}");
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(service: &str, ip: &str) -> ServiceAnswer {
        ServiceAnswer {
            service: service.into(),
            result: ServiceResult::Answered {
                ip: ip.parse().unwrap(),
            },
        }
    }

    fn failed(service: &str) -> ServiceAnswer {
        ServiceAnswer {
            service: service.into(),
            result: ServiceResult::Failed {
                reason: "down".into(),
            },
        }
    }

    fn pending(service: &str) -> ServiceAnswer {
        ServiceAnswer {
            service: service.into(),
            result: ServiceResult::NotAwaited,
        }
    }

    #[test]
    fn answers_are_parsed_strictly() {
        assert_eq!(
            parse_answer(b"81.2.69.160\n", false),
            Ok("81.2.69.160".parse().unwrap())
        );
        assert_eq!(
            parse_answer(b"  8.8.4.4\r\n", false),
            Ok("8.8.4.4".parse().unwrap())
        );
        for bad in [
            &b""[..],
            b"\n",
            b"81.2.69",
            b"81.2.69.160.1",
            b"081.2.69.160",
            b"81.2.69.256",
            b"81.2.69.160 81.2.69.161",
            b"ip=81.2.69.160",
            b"<html>81.2.69.160</html>",
            b"2a01:4f8::1",
            b"0x51.2.69.160",
            b"\xff\xfe",
            // Not our public address, whatever the service thinks.
            b"10.0.0.1",
            b"127.0.0.1",
            b"192.168.1.1",
            b"100.64.0.1",
            b"0.0.0.0",
            b"255.255.255.255",
            b"203.0.113.7",
            b"198.18.1.1",
        ] {
            assert!(
                parse_answer(bad, false).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_lab_range_is_accepted_only_when_allowed() {
        assert!(parse_answer(b"198.18.1.1\n", false).is_err());
        assert_eq!(
            parse_answer(b"198.18.1.1\n", true),
            Ok("198.18.1.1".parse().unwrap())
        );
        // Still nothing else that is not public.
        for bad in [&b"10.0.0.1"[..], b"127.0.0.1", b"100.64.0.1", b"0.0.0.0"] {
            assert!(parse_answer(bad, true).is_err());
        }
    }

    #[test]
    fn two_agreeing_answers_decide_at_once() {
        let answers = [
            answered("a", "81.2.69.160"),
            pending("b"),
            answered("c", "81.2.69.160"),
        ];
        assert_eq!(
            decide(&answers, false),
            Some(("81.2.69.160".parse().unwrap(), Rule::TwoAgree))
        );
        // Agreement beats list order.
        let answers = [
            answered("a", "1.1.1.1"),
            answered("b", "81.2.69.160"),
            answered("c", "81.2.69.160"),
        ];
        assert_eq!(
            decide(&answers, true),
            Some(("81.2.69.160".parse().unwrap(), Rule::TwoAgree))
        );
    }

    #[test]
    fn without_agreement_only_a_complete_round_decides() {
        let one = [answered("a", "81.2.69.160"), pending("b")];
        assert_eq!(decide(&one, false), None, "b may still agree");
        let one = [failed("a"), answered("b", "81.2.69.160")];
        assert_eq!(
            decide(&one, true),
            Some(("81.2.69.160".parse().unwrap(), Rule::OnlyOneAnswered))
        );
        let disagree = [
            failed("a"),
            answered("b", "1.1.1.1"),
            answered("c", "8.8.8.8"),
        ];
        assert_eq!(
            decide(&disagree, true),
            Some(("1.1.1.1".parse().unwrap(), Rule::FirstInList))
        );
        assert_eq!(decide(&[failed("a"), failed("b")], true), None);
        assert_eq!(decide(&[], true), None);
    }
}
