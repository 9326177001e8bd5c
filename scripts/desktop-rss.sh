#!/usr/bin/env bash
# Measures the desktop app's memory as a user runs it: the app started in
# demo mode under Xvfb (so it has content: a contact, shares, a download),
# left idle for $IDLE seconds (default 25), then the resident memory of all
# its processes summed: the app itself and WebKit's web and network
# processes. The demo's own XMPP server (Prosody) is reported apart: it is
# not part of the app. Prints one table row for BENCHMARKS.md.
#   scripts/desktop-rss.sh path/to/bitween
set -euo pipefail
bin="$1"
idle="${IDLE:-25}"
home=$(mktemp -d)
TMPDIR_GLOB="${TMPDIR:-/tmp}/bitween-demo-"
trap 'rm -rf "$home"' EXIT
HOME="$home" XDG_CONFIG_HOME="$home/config" XDG_DATA_HOME="$home/data" \
  LIBGL_ALWAYS_SOFTWARE=1 setsid xvfb-run -a -s "-screen 0 1280x800x24" \
  "$bin" --demo >"$home/app.log" 2>&1 &
runner=$!
sleep "$idle"
app=$(pgrep -f -x -- "$bin --demo" | head -n 1 || true)
if [ -z "$app" ]; then
  echo "| desktop app, demo mode, idle: total RSS of its processes | reported | (the app did not start: see $home/app.log) | - |"
  kill -- -"$runner" 2>/dev/null || true
  exit 0
fi
# Every descendant of the app, with its resident memory in KiB.
descendants() {
  local p=$1
  echo "$p"
  for c in $(pgrep -P "$p"); do descendants "$c"; done
}
app_kib=0
server_kib=0
parts=""
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
for p in $(descendants "$app"); do
  name=$(cat "/proc/$p/comm" 2>/dev/null || echo gone)
  kib=$(rss "$p")
  case "$name" in
    prosody|lua*) ;;
    *) app_kib=$((app_kib + kib)); parts="$parts${parts:+, }$name $((kib / 1024)) MiB" ;;
  esac
done
# The demo's server: its config lives in the demo's temporary folder.
for p in $(pgrep -f -- "--config $TMPDIR_GLOB" || true); do
  server_kib=$((server_kib + $(rss "$p")))
done
kill -TERM "$app" 2>/dev/null || true
sleep 3
kill -- -"$runner" 2>/dev/null || true
echo "| desktop app, demo mode, idle ${idle} s: total RSS of its processes (${parts}; the demo's Prosody $((server_kib / 1024)) MiB apart) | reported | $((app_kib / 1024)) MiB | - |"
