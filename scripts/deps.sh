#!/usr/bin/env bash
# Installs what building Bitween needs on Debian or Ubuntu, and only what is
# missing: a C toolchain and a Rust toolchain; with DESKTOP=1 the libraries
# of the desktop app (WebKitGTK, the tray's AppIndicator, D-Bus for the
# keyring, xdg-utils to open files); plus the Debian packages named in
# $EXTRA_PACKAGES (run.sh asks for Prosody, for the demo; test.sh for
# Prosody, ejabberd, qbittorrent-nox, Xvfb, WebKitWebDriver and Chromium);
# plus the Rust targets named in $RUST_TARGETS (the Windows scripts'
# x86_64-pc-windows-gnu). Sourced by run.sh, test.sh and the Windows
# scripts.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: build tools for crates with C parts, curl, and the extras.
need=()
desktop_packages=""
if [ "${DESKTOP:-0}" = 1 ]; then
  desktop_packages="libwebkit2gtk-4.1-dev libayatana-appindicator3-dev libdbus-1-dev xdg-utils"
fi
for pkg in build-essential pkg-config ca-certificates curl $desktop_packages ${EXTRA_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # Debian's prosody package starts a system-wide server (listening on every
  # interface). Bitween never uses it: the demo and the tests start private
  # ones on 127.0.0.1. So a system server we just installed is switched off.
  if [[ " ${need[*]} " == *" prosody "* ]] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-enabled --quiet prosody 2>/dev/null; then
    echo "Disabling the system-wide Prosody service the package started (Bitween runs its own)"
    as_root systemctl disable --now prosody >/dev/null 2>&1 || true
  fi
  # The same for ejabberd (the tests start private ones on 127.0.0.1, as
  # non-distributed Erlang nodes). Its service listens on every interface
  # (XMPP, HTTP, MQTT, STUN) and starts the Erlang port mapper (EPMD, port
  # 4369 on every interface), which erlang-base also socket-activates:
  # nothing of Bitween's needs either, so both are switched off too.
  if [[ " ${need[*]} " == *" ejabberd "* ]]; then
    if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet ejabberd 2>/dev/null; then
      echo "Disabling the system-wide ejabberd service the package started (Bitween's tests run their own)"
      as_root systemctl disable --now ejabberd >/dev/null 2>&1 || true
      as_root systemctl disable --now epmd.socket epmd.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/ejabberd ] && pgrep -u ejabberd beam >/dev/null 2>&1; then
      echo "Stopping the system-wide ejabberd the package started (Bitween's tests run their own)"
      as_root /etc/init.d/ejabberd stop >/dev/null 2>&1 || true
    fi
    # An EPMD the service left behind, if no Erlang node uses it.
    if command -v epmd >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
      epmd -kill >/dev/null 2>&1 || true
    fi
  fi
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

# (rustup is in ~/.cargo/bin, where the PATH may not look.)
for target in ${RUST_TARGETS:-}; do
  if ! PATH="$HOME/.cargo/bin:$PATH" rustup target list --installed | grep -qx "$target"; then
    echo "Installing the Rust target $target"
    PATH="$HOME/.cargo/bin:$PATH" rustup target add "$target"
  fi
done

# One shared build folder outside the clone, so reruns and CI are fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bitween-target}"
