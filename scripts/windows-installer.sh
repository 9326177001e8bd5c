#!/usr/bin/env bash
# Makes Bitween's Windows installer on Linux: cross-builds the desktop app,
# bitweend.exe and bitweenc.exe for x86_64-pc-windows-gnu, then packs them
# with the WebView2 loader into an NSIS installer with Debian's makensis
# (scripts/windows/installer.nsi). Installs what is missing.
#
#   scripts/windows-installer.sh            release build (what you ship)
#   scripts/windows-installer.sh --debug    debug build, stripped (the tests)
#
# Prints the installer's path: $CARGO_TARGET_DIR/x86_64-pc-windows-gnu/
# <profile>/bundle/nsis/Bitween_<version>_x64-setup.exe.
#
# Why not Tauri's own NSIS bundler (`cargo tauri build`): it downloads its
# NSIS plugin (nsis_tauri_utils.dll) from GitHub while bundling, and CI has
# no network beyond the package registries. See the README.
set -euo pipefail
cd "$(dirname "$0")/.."
WIN=x86_64-pc-windows-gnu
RUST_TARGETS="$WIN" EXTRA_PACKAGES="gcc-mingw-w64-x86-64 nsis" source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

profile=release fast=()
if [ "${1:-}" = "--debug" ]; then profile=debug fast=(-DFAST); fi
if [ "$profile" = release ]; then
  # The window's files are served from the binary (Tauri's custom protocol).
  cargo build --locked --release --target "$WIN" -p bitween-desktop --features custom-protocol
  cargo build --locked --release --target "$WIN" --bin bitweend --bin bitweenc
else
  cargo build --locked --target "$WIN" -p bitween-desktop
  cargo build --locked --target "$WIN" --bin bitweend --bin bitweenc
fi
out="$CARGO_TARGET_DIR/$WIN/$profile"

# The programs without their debug information (hundreds of MB in a debug
# build), beside the loader DLL the GNU build links (webview2-com-sys puts it
# next to bitween.exe).
stage="$out/bundle/stage"
rm -rf "$stage"
mkdir -p "$stage" "$out/bundle/nsis"
for exe in bitween bitweend bitweenc; do
  x86_64-w64-mingw32-strip -o "$stage/$exe.exe" "$out/$exe.exe"
done
loader="$out/WebView2Loader.dll"
if [ ! -f "$loader" ]; then
  echo "error: $loader is missing: the desktop build did not produce the WebView2 loader" >&2
  exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' src-tauri/Cargo.toml | head -n1)
installer="$out/bundle/nsis/Bitween_${version}_x64-setup.exe"
makensis -V2 -INPUTCHARSET UTF8 "${fast[@]}" \
  -DVERSION="$version" -DBINDIR="$stage" -DWEBVIEW2LOADER="$loader" \
  -DICON="$PWD/icons/icon.ico" -DOUTFILE="$installer" \
  scripts/windows/installer.nsi
rm -rf "$stage"
echo "$installer"
