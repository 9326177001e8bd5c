#!/usr/bin/env bash
# Builds and runs the Bitween backend (bitweend) with the flags given, after
# installing what is missing. Example:
#   BITWEEN_PASSWORD=... scripts/run.sh --jid you@example.org
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if [ $# -eq 0 ]; then
  cargo run --quiet --locked --bin bitweend -- --help
  exit 0
fi
exec cargo run --quiet --locked --bin bitweend -- "$@"
