#!/usr/bin/env bash
# Runs every benchmark in a release build and writes BENCHMARKS.md: a table
# of figure, target, value and verdict, with the machine it ran on and the
# command to reproduce. Installs what is missing first. Set
# BITWEEN_BENCH_BYTES to transfer less than 1 GiB on a small disk.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_PACKAGES="prosody" source scripts/deps.sh

out=$(mktemp)
cargo bench --locked --bench catalog | tee "$out.catalog"
cargo bench --locked --bench system | tee "$out.system"

{
  echo "# Benchmarks"
  echo
  echo "Measured by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d): $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), release build, everything on loopback."
  echo "Machines are noisy: compare ratios measured in the same run."
  echo
  echo "## End to end (real Prosody, real librqbit sessions)"
  echo
  grep '^|' "$out.system" || echo "(no figures: see the run's output)"
  echo
  echo "## Catalog"
  echo
  echo '```'
  grep -E 'target' "$out.catalog" || true
  echo '```'
  echo
  echo "Reproduce: \`scripts/bench.sh\`."
} > BENCHMARKS.md
rm -f "$out" "$out.catalog" "$out.system"
echo "wrote BENCHMARKS.md"
