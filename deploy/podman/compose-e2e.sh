#!/usr/bin/env bash
# The container deployment, run for real (`make compose-e2e`, docs/deployment.md):
#   1. prepares podman (deploy/podman/prepare.sh; fast when already done);
#   2. builds the image from deploy/Dockerfile (layer cache: dependencies are
#      rebuilt only when Cargo.toml/Cargo.lock change) and the test fixture
#      binary on the host;
#   3. brings up docker-compose.yml with deploy/podman/compose.test.yml (mock
#      LLM provider and OTLP receiver as containers) and waits until every
#      healthcheck passes;
#   4. runs the scenario battery (tests/tests/e2e/compose/, ignored by
#      `cargo test`) one test at a time against it;
#   5. takes the stack down again, also on failure;
#   6. runs the Helm chart's rendered Deployments (default and ephemeral
#      values) against the same images (deploy/podman/helm_pods.py).
# Prints the times and the battery's numbers as `compose-e2e:` lines.
# Needs root (podman, apt). OPENHEIM_IMAGE names the image (openheim:local);
# SKIP_BUILD=1 uses it as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf 'compose-e2e: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

t0=$(now)
STATE=$(deploy/podman/prepare.sh | tail -n 1)
export CONTAINERS_CONF="$STATE/containers.conf"
COMPOSE="$STATE/venv/bin/podman-compose"
log "podman prepared in $(since "$t0")"

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
t=$(now)
cargo build -q -p openheim-e2e --bin compose-fixture
export COMPOSE_FIXTURE="$PWD/${CARGO_TARGET_DIR:-target}/debug/compose-fixture"
log "fixture built in $(since "$t")"

if [ -z "${SKIP_BUILD:-}" ]; then
  t=$(now)
  podman build -q --network host -f deploy/Dockerfile -t "${OPENHEIM_IMAGE:-openheim:local}" . >/dev/null
  log "image built in $(since "$t")"
fi

# Free loopback ports for the gateway and the mock's control port.
read -r gw llm < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
export OPENHEIM_PORT=$gw COMPOSE_E2E_LLM_PORT=$llm
export OPENHEIM_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export OPENHEIM_IMAGE=${OPENHEIM_IMAGE:-openheim:local} RUST_LOG=info
export COMPOSE_PROJECT_NAME=openheim-e2e
compose() { "$COMPOSE" -p "$COMPOSE_PROJECT_NAME" -f docker-compose.yml -f deploy/podman/compose.test.yml "$@"; }

cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    log "failed; container logs (last lines):"
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}'); do
      echo "--- $c"; podman logs --tail 30 "$c" 2>&1 || true
    done
  fi
  compose down -v -t 5 >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT INT TERM
compose down -v -t 5 >/dev/null 2>&1 || true

# Created by compose, started in depends_on order by start_in_order.py: with
# podman before 4.6 podman-compose ignores `condition: service_healthy`, and
# without systemd nothing runs the healthchecks; the helper runs them.
t=$(now)
compose up -d --no-start >"$STATE/compose-up.log" 2>&1 || { cat "$STATE/compose-up.log"; exit 1; }
compose config 2>/dev/null \
  | "$STATE/venv/bin/python" -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)' \
  >"$STATE/compose.json"
"$STATE/venv/bin/python" deploy/podman/start_in_order.py "$STATE/compose.json" "$COMPOSE_PROJECT_NAME" 300
until podman healthcheck run "${COMPOSE_PROJECT_NAME}_gateway_1" >/dev/null 2>&1; do
  sleep 0.5
  if awk -v a="$t" -v b="$(now)" 'BEGIN { exit !(b - a > 300) }'; then
    log "the gateway was not healthy within 300 s"; podman ps -a; exit 1
  fi
done
log "stack up and healthy in $(since "$t") (from 'up' to the gateway's healthcheck passing)"

otlp=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
  "${COMPOSE_PROJECT_NAME}_otel-collector_1")
export COMPOSE_E2E_GATEWAY="http://127.0.0.1:$gw" COMPOSE_E2E_TOKEN="$OPENHEIM_AUTH_TOKEN" \
  COMPOSE_E2E_LLM="http://127.0.0.1:$llm" COMPOSE_E2E_OTLP="http://$otlp:4319" \
  COMPOSE_E2E_PROJECT="$COMPOSE_PROJECT_NAME"
t=$(now)
cargo nextest run -p openheim-e2e --run-ignored only --test-threads 1 --no-capture --no-fail-fast \
  -E 'test(/^e2e::compose::/)' 2>&1 | grep -v '^\s*$'
log "scenario battery passed in $(since "$t")"
compose down -v -t 5 >/dev/null 2>&1 || true

# The Helm chart's wiring: the rendered Deployments of the value sets that
# need nothing outside the chart (deploy/validate.sh renders them), run
# against the same images under podman.
RENDERED=${OPENHEIM_VALIDATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openheim-validate}/rendered
[ -f "$RENDERED/default.yaml" ] || deploy/validate.sh >/dev/null
for values in default ephemeral; do
  t=$(now)
  "$STATE/venv/bin/python" deploy/podman/helm_pods.py "$RENDERED/$values.yaml" \
    "$OPENHEIM_IMAGE" docker.io/library/redis:7.4-alpine 120
  log "helm [$values]: every Deployment ready and wired in $(since "$t")"
done
log "total $(since "$t0")"
