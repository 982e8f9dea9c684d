#!/usr/bin/env bash
# Installs the system tools kpbt's tests, CI and benchmarks need (Debian apt).
# Idempotent: when every tool is already present it touches neither the network nor apt.
#
#   aria2            aria2c            third-party BitTorrent peer (interop tests)
#   transmission-cli transmission-cli  third-party BitTorrent peer (interop tests)
#                    transmission-create
#   opentracker      opentracker       reference tracker (interop tests)
#   mktorrent        mktorrent         .torrent creation
#   redis-server     redis-server      the tracker's Redis store tests and benchmark
#   nginx            nginx             HTTP origin for the client's web seed tests
#   wrk              wrk               HTTP load generator (tracker benchmarks)
#   transmission-daemon transmission-daemon  many-torrent daemon (host agent benchmark)
#   hyperfine        hyperfine         command benchmarking
#   prometheus       promtool          metrics/rules checking
#   debootstrap      debootstrap       building the Docker base image offline
#   (shell lint)     shellcheck        from the apt package of the same name
#
# Env: KPBT_DEPS_MINIMAL=1 installs only what `scripts/test.sh` needs
# (aria2, transmission-cli, opentracker, mktorrent, python3-libtorrent, redis-server, nginx).
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*" >&2; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

# "binary:apt-package" pairs.
required=(
  aria2c:aria2
  transmission-cli:transmission-cli
  transmission-create:transmission-cli
  opentracker:opentracker
  mktorrent:mktorrent
  python3-libtorrent:python3-libtorrent
  redis-server:redis-server
  nginx:nginx
)
optional=(
  wrk:wrk
  transmission-daemon:transmission-daemon
  hyperfine:hyperfine
  promtool:prometheus
  debootstrap:debootstrap
  shellcheck:shellcheck
)
wanted=("${required[@]}")
if [[ "${KPBT_DEPS_MINIMAL:-0}" != 1 ]]; then
  wanted+=("${optional[@]}")
fi

# Debian installs some daemons' binaries outside a non-root PATH (e.g. /usr/sbin).
# A "python3-MOD" entry is a Python module of Debian's python3 (`import MOD` works).
has_bin() {
  if [[ $1 == python3-* ]]; then
    /usr/bin/python3 -c "import ${1#python3-}" >/dev/null 2>&1
    return
  fi
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]
}

missing=()
for pair in "${wanted[@]}"; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! has_bin "$bin"; then
    [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  log "all system tools present"
else
  log "missing packages: ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: install these Debian packages by hand: ${missing[*]}"
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root, or install: ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they are absent or older than a day.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1) ]]; then
    log "apt-get update"
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
  fi
  log "apt-get install ${missing[*]}"
  # policy-rc.d 101: don't let postinst scripts start daemons (prometheus, opentracker,
  # redis-server, nginx: the tests start their own on free ports).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created_policy=1
  fi
  rc=0
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  ((created_policy)) && "${sudo[@]}" rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
  for pair in "${wanted[@]}"; do
    bin=${pair%%:*}
    has_bin "$bin" || die "${bin} still missing after installing ${pair#*:}"
  done
  log "installed: ${missing[*]}"
fi

# Rust components: rustup can't fetch offline, so only check and tell.
for comp in rustfmt:cargo-fmt clippy:cargo-clippy; do
  if ! command -v "${comp#*:}" >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      log "adding rust component ${comp%%:*}"
      rustup component add "${comp%%:*}" || die "rust component ${comp%%:*} missing and rustup could not add it"
    else
      die "rust component ${comp%%:*} missing (no rustup to add it)"
    fi
  fi
done
