//! Addresses and paths on loopback: the addresses a device publishes and
//! how they change (`addresses`), port mapping through a fake NAT-PMP
//! gateway (`natpmp`), and transfers relayed through the server when
//! devices cannot reach each other (`paths`). The network lab, with real
//! routers in namespaces, is its own binary (`tests/lab/`). One test
//! binary: `cargo test --test network`, or one part, `cargo test --test
//! network natpmp::`.

mod addresses;
mod audience;
mod natpmp;
mod paths;
