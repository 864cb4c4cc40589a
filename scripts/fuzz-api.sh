#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with Schemathesis
# (from PyPI): every operation, generated valid and invalid inputs, every
# response checked with every check Schemathesis has (no 5xx, schemas,
# status codes, content types, valid input accepted, invalid input refused,
# …), once per seed.
#
#   bash scripts/fuzz-api.sh [max examples per operation, default 100] [seeds, default "1 2"]
#
# `.ci/run` runs a short version (`bash scripts/fuzz-api.sh 25 "1 2"`).
# Needs the local Postgres and RabbitMQ (as for the tests). Uses a throwaway
# database and broker namespace, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-100}"
seeds="${2:-1 2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hookline-target}"
command -v st >/dev/null 2>&1 || python3 -m pip install --quiet "schemathesis==4.32.5"
cargo build --quiet --release -p hookline-cli

suffix="fuzz$(date +%s)$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
wport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="fuzz-admin-key-0123456789"
log=$(mktemp)
HOOKLINE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/hookline_$suffix" \
HOOKLINE_NAMESPACE="$suffix" HOOKLINE_QUEUE_TYPE=classic HOOKLINE_QUEUE_EXPIRES_MS=600000 \
HOOKLINE_LISTEN_ADDR="127.0.0.1:$port" HOOKLINE_WORKER_LISTEN_ADDR="127.0.0.1:$wport" \
HOOKLINE_API_KEYS="$key" RUST_LOG=warn \
  "$CARGO_TARGET_DIR/release/hookline" run >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS hookline_$suffix WITH (FORCE)" >/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

status=0
for seed in $seeds; do
  echo "== Schemathesis, seed $seed, $examples examples per operation, every check"
  st run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all \
    --max-examples "$examples" \
    --workers 1 \
    --seed "$seed" || status=$?
done
if grep -q "panicked" "$log"; then
  echo "the service panicked:" >&2
  cat "$log" >&2
  exit 1
fi
exit $status
