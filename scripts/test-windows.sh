#!/usr/bin/env bash
# Windows from this Linux machine: cross-builds bitweend.exe, bitweenc.exe
# and the desktop app for x86_64-pc-windows-gnu (mingw-w64), runs clippy
# for that target, the core's unit tests under Wine, makes the NSIS
# installer (scripts/windows-installer.sh) and runs tests/wine.rs: two
# bitweend.exe under Wine on a Linux Prosody (127.0.0.1), driven by
# bitweenc.exe, transfer a file byte for byte; the installer installs,
# the installed programs run, the uninstaller cleans up. Called by scripts/test.sh
# (a failure fails it); runs alone too. Installs what is missing.
# (macOS is not checked here: see the README's "Other systems".)
set -euo pipefail
cd "$(dirname "$0")/.."
# Wine runs the .exe files; mingw-w64 links them (and builds the C parts of
# aws-lc and ring); NSIS is the desktop installer's maker; Prosody is the
# transfer's server.
WIN=x86_64-pc-windows-gnu
RUST_TARGETS="$WIN" EXTRA_PACKAGES="prosody wine wine64 gcc-mingw-w64-x86-64 nsis" source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

# A Wine prefix of our own beside the build folder (not the user's ~/.wine).
export WINEPREFIX="${BITWEEN_WINEPREFIX:-$HOME/.cache/bitween-wine}"
export WINEARCH=win64 WINEDEBUG=-all
# Wine's server and its service processes keep the standard output of the
# program that started them; stop them when this script ends, so that none
# outlives it holding the caller's output open.
trap 'wineserver -k 2>/dev/null || true' EXIT
if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
  echo "Creating the Wine prefix $WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  wineboot -i >/dev/null 2>&1 || true
  wineserver -w
fi
# Rust's standard library takes its random numbers from ProcessPrng in
# bcryptprimitives.dll (Windows 10 and later); Debian 12's Wine 8.0 has no
# such DLL, so the test prefix gets a small one (scripts/wine/processprng.c).
wine_dlls=$(dirname "$(readlink -f /usr/lib/wine/wine64)")
if ! ls /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/bcryptprimitives.dll \
  "$wine_dlls"/../x86_64-windows/bcryptprimitives.dll >/dev/null 2>&1; then
  dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
  if [ ! -e "$dll" ] || [ scripts/wine/processprng.c -nt "$dll" ]; then
    echo "Building bcryptprimitives.dll (ProcessPrng) for Wine"
    x86_64-w64-mingw32-gcc -shared -O2 -o "$dll" scripts/wine/processprng.c -ladvapi32
  fi
fi

echo "== Windows: bitweend.exe and bitweenc.exe"
cargo build --locked --target "$WIN" --bin bitweend --bin bitweenc
cargo clippy --locked --target "$WIN" --lib --bins -- -D warnings
cargo clippy --locked --target "$WIN" --lib --bins --profile test -- -D warnings

echo "== Windows: the core's unit tests under Wine"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
  cargo test --locked --target "$WIN" --lib --bins

echo "== Windows: the desktop app and the installer (from the debug build)"
cargo clippy --locked --target "$WIN" -p bitween-desktop --bins -- -D warnings
installer=$(scripts/windows-installer.sh --debug | tail -n1)

echo "== Windows: a transfer between two bitweend.exe, and the installer, under Wine"
started=$(date +%s)
# Each Wine program in them has its own time limit; this one bounds the
# whole step (a build of the test included) in case something else stalls.
BITWEEN_WINDOWS_BIN="$CARGO_TARGET_DIR/$WIN/debug" BITWEEN_WINDOWS_INSTALLER="$installer" \
  timeout -k 30 1200 cargo test --locked --test wine -- --ignored --nocapture
echo "the Wine tests took $(($(date +%s) - started)) s (build included)"
