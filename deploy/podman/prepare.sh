#!/usr/bin/env bash
# Prepares a Debian machine with no Docker engine and no image registry to build and run the
# project's containers with podman (daemonless):
#   - installs podman, runc, debootstrap (Debian packages) and podman-compose (PyPI, in a venv);
#   - writes a containers.conf that uses runc (crun refuses hybrid cgroup v1/v2 hosts) and sets no
#     default ulimits (an unprivileged sandbox may forbid raising them);
#   - makes the base images the Dockerfile and docker-compose.yml name, from Debian packages:
#       docker.io/library/debian:bookworm-slim   (debootstrap --variant=minbase)
#       docker.io/library/rust:1.95-slim-bookworm (that rootfs + gcc + the installed rustup toolchain)
#       docker.io/library/redis:7.4-alpine        (that rootfs + Debian's redis-server; protected
#                                                  mode off, as in the official image)
#     The system's extra CA certificates (/usr/local/share/ca-certificates/*.crt), if any, are added
#     to the rust image so that cargo inside a build trusts what the host trusts.
# Idempotent: images that exist are kept (FORCE=1 rebuilds). Needs root.
# Use the result with:  export CONTAINERS_CONF=$STATE/containers.conf  (printed at the end)
#   podman build --network host -f deploy/Dockerfile -t openheim:local .
#   $STATE/venv/bin/podman-compose up -d
set -euo pipefail
STATE=${PODMAN_STATE:-/var/lib/openheim-podman}
RELEASE=${DEBIAN_RELEASE:-bookworm}
RUST_TAG=${RUST_TAG:-1.95-slim-bookworm}
mkdir -p "$STATE"
log() { printf 'prepare-podman: %s\n' "$*" >&2; }

need=()
for c in podman runc debootstrap; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$STATE/venv/bin/podman-compose" ]; then
  log "installing podman-compose"
  python3 -c 'import ensurepip' 2>/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
  python3 -m venv "$STATE/venv" && "$STATE/venv/bin/pip" install -q podman-compose==1.6.0
fi
cat >"$STATE/containers.conf" <<CONF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$STATE/containers.conf"

have() { [ -z "${FORCE:-}" ] && podman image exists "$1"; }

# The Debian mirror apt already uses (deb822 or one-line sources).
mirror() {
  local m
  m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$m" ] || m=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$m" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
  echo "$m"
}

ROOT="$STATE/rootfs-$RELEASE"
if ! have "docker.io/library/debian:$RELEASE-slim"; then
  if [ ! -x "$ROOT/bin/sh" ]; then
    log "debootstrap $RELEASE (about a minute)"
    rm -rf "$ROOT"
    debootstrap --variant=minbase "$RELEASE" "$ROOT" "$(mirror)" >"$STATE/debootstrap.log" 2>&1
  fi
  tar -C "$ROOT" -c . | podman import - "docker.io/library/debian:$RELEASE-slim" >/dev/null
  log "made debian:$RELEASE-slim"
fi

if ! have "docker.io/library/rust:$RUST_TAG"; then
  ctx=$(mktemp -d)
  tc=$(rustup show active-toolchain 2>/dev/null | awk '{print $1}')
  tcdir="${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$tc"
  [ -d "$tcdir" ] || { log "no rustup toolchain found ($tcdir)"; exit 1; }
  mkdir -p "$ctx/rustup/toolchains" "$ctx/certs"
  cp -a "$tcdir" "$ctx/rustup/toolchains/"
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$tc" >"$ctx/rustup/settings.toml"
  cp -a "$(dirname "$(command -v rustup)")/rustup" "$ctx/rustup-bin"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
  cat >"$ctx/Containerfile" <<'CF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1 || true
COPY rustup/ /usr/local/rustup/
COPY rustup-bin /usr/local/cargo/bin/rustup
RUN for t in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do \
      ln -s rustup /usr/local/cargo/bin/$t; done
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CF
  sed -i "s/bookworm-slim/$RELEASE-slim/" "$ctx/Containerfile"
  log "making rust:$RUST_TAG from toolchain $tc"
  podman build -q --network host -t "docker.io/library/rust:$RUST_TAG" "$ctx" >/dev/null
  rm -rf "$ctx"
  podman run --rm "docker.io/library/rust:$RUST_TAG" cargo --version >&2
fi

if ! have docker.io/library/redis:7.4-alpine; then
  ctx=$(mktemp -d)
  printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' >"$ctx/redis-server"
  chmod +x "$ctx/redis-server"
  cat >"$ctx/Containerfile" <<'CF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      redis-server redis-tools >/dev/null && rm -rf /var/lib/apt/lists/* && mkdir -p /data
COPY redis-server /usr/local/bin/redis-server
WORKDIR /data
CMD ["redis-server"]
CF
  sed -i "s/bookworm-slim/$RELEASE-slim/" "$ctx/Containerfile"
  log "making redis:7.4-alpine (Debian's redis-server)"
  podman build -q --network host -t docker.io/library/redis:7.4-alpine "$ctx" >/dev/null
  rm -rf "$ctx"
fi

log "ready; use: export CONTAINERS_CONF=$STATE/containers.conf; compose: $STATE/venv/bin/podman-compose"
echo "$STATE"
