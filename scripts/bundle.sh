#!/usr/bin/env bash
# Builds the desktop app's installable bundles, a .deb and an AppImage, with
# Tauri's bundler (installs what is missing, including the tauri CLI). The
# AppImage step downloads linuxdeploy from GitHub the first time, so it
# needs the internet; `scripts/bundle.sh deb` builds the .deb alone.
# The bundles land in $CARGO_TARGET_DIR/release/bundle/{deb,appimage}/.
set -euo pipefail
cd "$(dirname "$0")/.."
DESKTOP=1 EXTRA_PACKAGES="file librsvg2-dev" source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo tauri --version >/dev/null 2>&1; then
  echo "Installing the tauri CLI (cargo install tauri-cli)"
  cargo install --quiet tauri-cli --version '^2' --locked
fi
bundles="${1:-deb,appimage}"
# linuxdeploy is itself an AppImage: let it run without FUSE.
export APPIMAGE_EXTRACT_AND_RUN=1
cd src-tauri
cargo tauri build --bundles "$bundles"
echo "Bundles:"
find "$CARGO_TARGET_DIR/release/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.AppImage' \) -print
