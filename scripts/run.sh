#!/usr/bin/env bash
# Builds and runs Bitween after installing what is missing.
#   scripts/run.sh                      the desktop app (first run: the account screen,
#                                       with "Try a demo")
#   scripts/run.sh --demo               the desktop app in demo mode: a private XMPP
#                                       server and a demo contact on this computer only
#   scripts/run.sh --hidden             the desktop app, started in the tray
#   scripts/run.sh bitweend --jid ...   the headless daemon instead (bitweend's flags)
#   scripts/run.sh --jid ...            the same (as before the desktop app existed)
# This is a debug build, which shares its build cache with scripts/test.sh
# (hashing uses assembly SHA-1 even so); scripts/bundle.sh makes the
# optimised, installable app.
set -euo pipefail
cd "$(dirname "$0")/.."
daemon=0
if [ "${1:-}" = bitweend ]; then
  daemon=1
  shift
elif [ "${1:-}" = --jid ] || [[ "${1:-}" == --jid=* ]] || [ "${1:-}" = --help ]; then
  daemon=1
fi
if [ $daemon = 1 ]; then
  source scripts/deps.sh
  exec cargo run --quiet --locked --bin bitweend -- "$@"
fi
# Prosody is the demo's private XMPP server (started only for the demo, in
# a temporary folder, on 127.0.0.1).
DESKTOP=1 EXTRA_PACKAGES="prosody" source scripts/deps.sh
exec cargo run --quiet --locked -p bitween-desktop -- "$@"
