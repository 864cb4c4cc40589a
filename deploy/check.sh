#!/usr/bin/env bash
# Checks the Docker Compose stack without a Docker engine (CI has none):
#
#   1. docker-compose.yml is valid (`docker-compose config`, which needs no
#      engine; Debian's docker-compose package is installed when missing);
#   2. every JSON and YAML file under deploy/ parses;
#   3. the pieces agree: each host:port that Prometheus scrapes, that the
#      collector exports to, that Grafana's data sources and Hookline's own
#      settings point at, names a service of the compose file and a port that
#      service listens on; mounted config files exist;
#   4. the dashboard queries only metric families the services register
#      (read from the Rust code), and deploy/dashboard_metrics.txt lists
#      exactly the families it queries.
#
# Steps 2-4 are deploy/check.py.
#
# Usage (from anywhere):  bash deploy/check.sh            # check
#                         bash deploy/check.sh --update   # rewrite dashboard_metrics.txt, then check
set -euo pipefail
cd "$(dirname "$0")/.."

update_metrics=0
case "${1:-}" in
  "") ;;
  --update) update_metrics=1 ;;
  *) echo "usage: bash deploy/check.sh [--update]" >&2; exit 2 ;;
esac

step() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "tools"
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose not found: installing Debian's docker-compose package"
  apt_install docker-compose
fi
docker-compose version --short 2>/dev/null || docker-compose --version
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "PyYAML not found: installing it"
  python3 -m pip install -q pyyaml || apt_install python3-yaml
fi

step "compose: docker-compose config"
# `config` only reads and validates the file: no engine is contacted.
docker-compose -f docker-compose.yml config -q
services=$(docker-compose -f docker-compose.yml config --services)
resolved=$(mktemp)
trap 'rm -f "$resolved"' EXIT
docker-compose -f docker-compose.yml config >"$resolved"
echo "services: $(echo "$services" | tr '\n' ' ')"

step "deploy/: parse, cross-check, dashboard metrics"
COMPOSE_SERVICES="$services" RESOLVED_COMPOSE="$resolved" UPDATE_METRICS="$update_metrics" \
  python3 deploy/check.py

echo "deploy check: ok"
