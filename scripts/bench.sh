#!/usr/bin/env bash
# Runs every benchmark in a release build and writes BENCHMARKS.md: a table
# of figure, target, value and verdict, with the machine and commit it ran
# on and the command to reproduce. Only what this run printed goes in
# (docs/benchmarks.md explains the figures). Installs what is missing first.
# Set BITWEEN_BENCH_BYTES to transfer less than 1 GiB on a small disk.
set -euo pipefail
cd "$(dirname "$0")/.."
# (iproute2, nftables, miniupnpd-nftables and openssl: the network lab.)
DESKTOP=1 EXTRA_PACKAGES="prosody xvfb xauth iproute2 nftables miniupnpd-nftables openssl" source scripts/deps.sh

out=$(mktemp)
cargo bench --locked --bench catalog | tee "$out.catalog"
# (system: start-up, latency, memory, hostile contact, transfer, and
# 10,000 small files shared with bitweenc: docs/benchmarks.md.)
cargo bench --locked --bench system | tee "$out.system"
# 100 MiB over each path (direct, punched, relayed) in the network lab
# (tests/lab/: network namespaces, so as root), time to the first byte.
cargo test --release --locked --test lab -- --ignored --nocapture bench_paths | tee "$out.lab"
# A restart with 8 GiB shared in 200 files: time until seeding, bytes read.
cargo test --release --locked --test torrent -- --ignored --nocapture restart::bench_restart | tee "$out.restart"
# A shared folder of 1,000 files (2 GiB) that gets a 10 MiB file: time until
# the contact sees the new version, bytes read, bytes the contact fetched.
cargo test --release --locked --test torrent -- --ignored --nocapture watch::bench_folder_update | tee "$out.update"
# The desktop app's memory, all its processes, in demo mode under Xvfb.
cargo build --release --locked -p bitween-desktop --features custom-protocol
scripts/desktop-rss.sh "$CARGO_TARGET_DIR/release/bitween" | tee "$out.desktop"

# Everything below comes from this run's output; how each figure is
# measured is explained in docs/benchmarks.md, which quotes no figures.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- . ':!BENCHMARKS.md' 2>/dev/null)" ]; then commit="$commit (with local changes)"; fi
{
  echo "# Benchmarks"
  echo
  echo "Measured by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) at commit $commit: $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), release build, everything on loopback."
  echo "Every figure below comes from that run. How each one is measured:"
  echo "[docs/benchmarks.md](docs/benchmarks.md). Machines are noisy: compare"
  echo "ratios measured in the same run, and look at the spreads."
  echo
  echo "## End to end (real Prosody, real librqbit sessions)"
  echo
  grep '^|' "$out.system" || echo "(no figures: see the run's output)"
  grep '^|' "$out.desktop" || true
  echo
  echo "## Paths between two homes (network lab: NAT routers, Prosody with proxy65)"
  echo
  echo "| figure | target | value | |"
  echo "| --- | --- | --- | --- |"
  grep '^| lab' "$out.lab" || echo "(no figures: see the run's output)"
  echo
  echo "## Restart of a large library"
  echo
  echo "| figure | target | value | |"
  echo "| --- | --- | --- | --- |"
  grep '^| restart' "$out.restart" || echo "(no figures: see the run's output)"
  echo
  echo "## A shared folder that changes"
  echo
  echo "| figure | target | value | |"
  echo "| --- | --- | --- | --- |"
  grep '^| folder update' "$out.update" || echo "(no figures: see the run's output)"
  echo
  echo "## Catalog"
  echo
  echo '```'
  grep -E 'target' "$out.catalog" || true
  echo '```'
  echo
  echo "Reproduce: \`scripts/bench.sh\`."
} > BENCHMARKS.md
rm -f "$out" "$out.catalog" "$out.system" "$out.desktop" "$out.lab" "$out.restart" "$out.update"
echo "wrote BENCHMARKS.md"
