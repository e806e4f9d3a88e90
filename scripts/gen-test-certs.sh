#!/usr/bin/env bash
# Makes a throwaway certificate authority and a server certificate signed by
# it, for tests and benchmarks only: scripts/gen-test-certs.sh DIR writes
# DIR/ca.pem, DIR/cert.pem (for localhost and 127.0.0.1) and DIR/key.pem.
# Nothing here is committed: every run makes new keys.
set -euo pipefail
dir=${1:?usage: gen-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=vigil test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout key.pem -out cert.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null
rm -f cert.csr ext.cnf ca.srl
