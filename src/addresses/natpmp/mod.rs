//! NAT-PMP (RFC 6886) port mapping: asks the IPv4 default gateway to
//! forward an external TCP port to our BitTorrent listen port, renews the
//! mapping at half its lifetime, reports it (the watcher publishes the
//! external port beside the listen port) and deletes it on shutdown.
//!
//! Everything the gateway sends is untrusted: a response with the wrong
//! length, version, opcode or port, or an error result code, is refused
//! with a message that says which. Failures are logged with the gateway
//! and the reason and retried with backoff; nothing waits for them.
//!
//! Not here: PCP (RFC 6887), NAT-PMP's successor. A gateway that only
//! speaks PCP answers "unsupported version", which is reported as such.
//! The gateway's multicast announcements (224.0.0.1:5350) are not
//! listened to either: a mapping lost to a router reboot comes back at the
//! next renewal. Only TCP is mapped (peers reach us over TCP only: `net::splice`),
//! and the default gateway is only discovered on Linux (`/proc/net/route`)
//! and Windows (its routing table); elsewhere `natpmp_gateway` must name
//! it.
//!
//! `wire.rs` is the message codec, `gateway.rs` finds the gateway and
//! `mapper.rs` keeps the mapping.

mod gateway;
mod mapper;
mod wire;

pub use crate::events::PortMapping;
pub use gateway::{default_gateway, default_gateway_from_route_table};
pub use mapper::{Mapper, MapperConfig, NatPmpError, Timing};
pub use wire::*;
