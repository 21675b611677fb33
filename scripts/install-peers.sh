#!/usr/bin/env bash
# Installs the real peers Herald's interop suite talks to: sipp (package sip-tester), Kamailio with its
# presence modules, Prosody, Redis, dnsmasq (dnsmasq-base: the binary alone, no service; the RFC 3263
# tests serve their test zone with it on loopback), two softphones run headless: baresip
# (baresip-core: the binary and its modules, no GUI or audio back ends) and linphonec (linphone-cli),
# Debian's chromium (the admin page's browser test drives it with playwright-core; nothing downloads a
# browser) and fail2ban (its fail2ban-regex checks the filter in docs/fail2ban; the daemon is left
# stopped like the others). Idempotent; runs as root on Debian. The phones install no daemon.
#
# The Debian packages would start (and enable) their own daemons. The suite starts what it needs
# itself, on 127.0.0.1 with its own configs, so the install must leave none of them running or enabled:
#  - a policy-rc.d that answers 101 keeps invoke-rc.d from starting anything during the install
#    (we install one only if none is there, and remove only the one we installed);
#  - afterwards each package's service is disabled at boot (sysv links and systemd wants links);
#  - as a last resort, a daemon that is running now but was not before the install is stopped with its
#    own init script. No process is ever killed by name.
set -euo pipefail

PACKAGES=(sip-tester kamailio kamailio-presence-modules prosody redis-server dnsmasq-base baresip-core linphone-cli chromium fail2ban)
SERVICES=(kamailio prosody redis-server fail2ban)
POLICY=/usr/sbin/policy-rc.d

log() { printf '[install-peers] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers.sh must run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

pidfile_of() {
  case $1 in
    kamailio) echo /run/kamailio/kamailio.pid ;;
    prosody) echo /run/prosody/prosody.pid ;;
    redis-server) echo /run/redis/redis-server.pid ;;
    fail2ban) echo /run/fail2ban/fail2ban.pid ;;
  esac
}

service_running() {
  # 0 when the package's pid file names a live process whose command line is that daemon's.
  # (Init scripts' "status" is not reliable here: kamailio's answers 0 while unconfigured.)
  local s=$1 pidfile pid
  pidfile=$(pidfile_of "$s")
  [ -r "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$s"
}

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"

  declare -A was_running=()
  for s in "${SERVICES[@]}"; do
    if service_running "$s"; then was_running[$s]=1; fi
  done

  our_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# installed by herald scripts/install-peers.sh for the duration of apt-get install\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    our_policy=1
    trap 'rm -f "$POLICY"' EXIT
  fi

  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PACKAGES[@]}"

  if [ "$our_policy" -eq 1 ]; then
    rm -f "$POLICY"
    trap - EXIT
  fi

  for s in "${SERVICES[@]}"; do
    if [ -z "${was_running[$s]:-}" ] && service_running "$s"; then
      log "the install started $s; stopping it with /etc/init.d/$s"
      "/etc/init.d/$s" stop || true
    fi
  done
else
  log "already installed: ${PACKAGES[*]}"
fi

# Not enabled at boot, whichever init system the machine has.
for s in "${SERVICES[@]}"; do
  if [ -x "/etc/init.d/$s" ] && command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
  if command -v deb-systemd-helper >/dev/null 2>&1; then
    deb-systemd-helper disable "$s.service" >/dev/null 2>&1 || true
  fi
done

for bin in /usr/bin/sipp /usr/sbin/kamailio /usr/bin/prosody /usr/bin/redis-server /usr/sbin/dnsmasq /usr/bin/baresip /usr/bin/linphonec /usr/bin/chromium /usr/bin/fail2ban-regex; do
  if [ ! -x "$bin" ]; then
    echo "install-peers.sh: $bin is missing after the install" >&2
    exit 1
  fi
done
log "sipp: $({ /usr/bin/sipp -v 2>&1 || true; } | grep -m1 -o 'v[0-9][0-9.]*' || true)"
log "kamailio: $(/usr/sbin/kamailio -v 2>&1 | head -n1)"
log "redis-server: $(/usr/bin/redis-server --version 2>&1 | head -n1)"
log "baresip-core: $(dpkg-query -W -f='${Version}' baresip-core), linphone-cli: $(dpkg-query -W -f='${Version}' linphone-cli)"
log "chromium: $(/usr/bin/chromium --version 2>&1 | head -n1)"
log "done"
