#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, if missing:
# redis-cli and redis-benchmark (real RESP clients), redis-server (the
# reference in bench-vs-redis), nft, ip, ss and sysctl (network-namespace
# fault tests), gcc (to build the select() C clients), faketime (to move the
# system date under a running server), promtool (checks the admin endpoint's
# /metrics; Debian's prometheus package), openssl (the TLS tests'
# certificates and a TLS client no one here wrote: openssl s_client),
# python3 with venv (for redis-py, below). Needs root for apt-get; does nothing when everything is there
# already.
#
# Then redis-py, the Python Redis client (PyPI `redis`, latest), in a venv
# at target/redis-py: tests/real_clients.rs runs it at its default settings
# against `--protocol resp`. A venv rather than the system's pip, so it
# works the same on a fresh Debian (whose pip refuses system installs) and
# touches nothing outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v ping >/dev/null || need+=(iputils-ping)
command -v faketime >/dev/null || need+=(faketime)
command -v sysctl >/dev/null || need+=(procps)
command -v python3 >/dev/null || need+=(python3)
# Debian ships venv's pip bootstrap separately.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v promtool >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
# Headless Chromium and its WebDriver: tests/status.rs looks at the admin
# status page in a real browser, tests/browser.rs at examples/browser.html.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)

if [ ${#need[@]} -ne 0 ]; then
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
fi

# venv DIR MODULE SPEC: PyPI's SPEC in its own venv at target/DIR, unless
# MODULE already imports there. A venv rather than the system's pip, so it
# works the same on a fresh Debian (whose pip refuses system installs).
venv() {
  local dir=target/$1
  if ! "$dir/bin/python" -c "import $2" 2>/dev/null; then
    echo "installing $3 into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$3"
  fi
}

venv redis-py redis 'redis>=8'
# Selenium drives Debian's chromium through its chromedriver for
# tests/status.rs and tests/browser.rs.
venv selenium selenium 'selenium>=4.20'
# websockets: a WebSocket client nobody here wrote, for tests/ws.rs.
venv websockets websockets 'websockets>=13'
