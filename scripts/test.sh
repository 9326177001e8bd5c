#!/usr/bin/env bash
# Runs every check and test of Bitween: formatting, clippy, unit tests,
# property tests and the integration tests against a real Prosody (each
# test starts its own server on a loopback port). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Prosody is the tests' XMPP server; qbittorrent-nox the independent
# BitTorrent client of the interop test; chromium and chromium-driver the
# headless browser of the web UI test.
EXTRA_PACKAGES="prosody qbittorrent-nox chromium chromium-driver" source scripts/deps.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
