#!/usr/bin/env bash
# Installs what building Bitween needs on Debian or Ubuntu, and only what is
# missing: a C toolchain and a Rust toolchain, plus the Debian packages named
# in $EXTRA_PACKAGES (test.sh asks for Prosody, qbittorrent-nox, chromium and
# chromium-driver). Sourced by run.sh and test.sh.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: build tools for crates with C parts, curl, and the extras.
need=()
for pkg in build-essential pkg-config ca-certificates curl ${EXTRA_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "Installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# One shared build folder outside the clone, so reruns and CI are fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bitween-target}"
