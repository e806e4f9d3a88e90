#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, if missing:
# redis-cli and redis-benchmark (real RESP clients), redis-server (the
# reference in bench-vs-redis), nft, ip, ss and sysctl (network-namespace
# fault tests), gcc (to build the select() C clients), faketime (to move the
# system date under a running server), openssl (the TLS tests' certificates
# and a TLS client no one here wrote: openssl s_client). Needs root for apt-get; does nothing
# when everything is there already.
set -euo pipefail

need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v ping >/dev/null || need+=(iputils-ping)
command -v faketime >/dev/null || need+=(faketime)
command -v sysctl >/dev/null || need+=(procps)
command -v openssl >/dev/null || need+=(openssl)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# redis-server's package would start a service: policy-rc.d keeps it from
# starting (nothing should listen on 6379 behind the tests' back).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
