#!/usr/bin/env bash
# Runs vigil's whole test suite on a fresh machine: installs what the tests
# need, then runs them. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests run real processes and hold thousands of sockets: make sure the
# open-files limit is as high as this machine allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Real peers the tests talk to (redis-cli, the select() C clients) and the
# network-namespace tools: installed from Debian's packages when missing.
bash scripts/install-deps.sh

# `--all-targets` runs the unit, integration and example tests, including
# tests/netns.rs, the fault tests on network namespaces: they need root and
# fail (never skip) without it. It leaves out the doc examples, hence the
# second line.
cargo test --all-targets
cargo test --doc
