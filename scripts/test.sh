#!/usr/bin/env bash
# Runs every check and test of Bitween: formatting, clippy, unit tests,
# property tests, the integration tests against a real Prosody and a real
# ejabberd (each test starts its own server on a loopback port; the core
# flow runs on both), the web UI in headless Chromium and the desktop app in
# its real webview under Xvfb. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Prosody and ejabberd are the tests' XMPP servers; qbittorrent-nox the
# independent BitTorrent client of the interop test; chromium and chromium-driver the
# headless browser of the web UI test; Xvfb, xauth and WebKitWebDriver
# (webkit2gtk-driver) run the desktop app's end-to-end test; iproute2,
# nftables and miniupnpd-nftables (the daemon alone, no system service)
# build the network lab's namespaces, routers and UPnP gateway, and openssl
# makes its test CA (tests/lab/; `cargo test` below runs it, as root).
DESKTOP=1 EXTRA_PACKAGES="prosody ejabberd qbittorrent-nox chromium chromium-driver xvfb xauth webkit2gtk-driver iproute2 nftables miniupnpd-nftables openssl" \
  source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "Installing tauri-driver"
  cargo install --quiet tauri-driver --version '^2' --locked
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The core: unit, property and integration tests, and the web UI.
cargo test --all-targets --locked
# The desktop app (it drives bitweend as a contact, built just above).
cargo test -p bitween-desktop --all-targets --locked
# Windows, cross-built here: bitweend.exe and bitweenc.exe, the core's unit
# tests under Wine and a transfer between two bitweend.exe under Wine.
scripts/test-windows.sh
