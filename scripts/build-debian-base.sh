#!/usr/bin/env bash
# Builds the Docker image kpbt/debian-base:bookworm without pulling anything:
# debootstrap (minbase) from the Debian mirror this machine's apt uses, then
# `docker import`. Skipped when the image already exists (KPBT_REBUILD=1 forces).
# The debootstrapped tree is kept in $KPBT_DEBIAN_ROOT as a cache for rebuilds.
#
# Env: KPBT_DEBIAN_IMAGE (default kpbt/debian-base:bookworm)
#      KPBT_DEBIAN_ROOT  (default /var/tmp/kpbt-debian-root)
set -euo pipefail

image=${KPBT_DEBIAN_IMAGE:-kpbt/debian-base:bookworm}
suite=bookworm
root=${KPBT_DEBIAN_ROOT:-/var/tmp/kpbt-debian-root}

log() { printf '[debian-base] %s\n' "$*" >&2; }
die() { printf '[debian-base] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker not found"
if [[ ${KPBT_REBUILD:-0} != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image already exists (KPBT_REBUILD=1 to rebuild)"
  exit 0
fi
[[ $(id -u) == 0 ]] || die "debootstrap needs root"
if ! command -v debootstrap >/dev/null 2>&1 && [[ ! -x /usr/sbin/debootstrap ]]; then
  die "debootstrap not found: run scripts/install-deps.sh (apt-get install debootstrap)"
fi

# The mirrors apt uses here (deb822 *.sources or one-line sources.list), first
# http(s) URI whose path ends in /debian resp. /debian-security.
apt_uris() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+' | sed 's:/*$::' || true
}
mirror=$(apt_uris | grep -E '/debian$' | head -n1)
security=$(apt_uris | grep -E '/debian-security$' | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}
log "mirror $mirror, security $security"

start=$SECONDS
if [[ ! -f $root/.kpbt-debootstrap-done ]]; then
  rm -rf "$root"
  log "debootstrap --variant=minbase $suite $root"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -n 30 "$root.debootstrap.log" >&2; die "debootstrap failed (log: $root.debootstrap.log)"; }
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
  # Keep the image small; `apt-get update` inside fetches fresh lists.
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  touch "$root/.kpbt-debootstrap-done"
  log "debootstrap done in $((SECONDS - start))s"
fi

log "docker import -> $image"
tar --numeric-owner --exclude=./.kpbt-debootstrap-done -C "$root" -c . |
  docker import \
    -c 'ENV DEBIAN_FRONTEND=noninteractive' \
    -c 'CMD ["/bin/bash"]' \
    - "$image" >/dev/null
log "built $image in $((SECONDS - start))s"
