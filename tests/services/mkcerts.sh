#!/bin/sh
# mkcerts.sh DIR - a throwaway certificate authority and a server
# certificate it signed, for the TLS tests, made with openssl into DIR:
#
#   ca.pem, ca.key          the test CA ("workq test CA", 10 years)
#   server.pem, server.key  the server's certificate (CN localhost, SAN
#                           DNS:localhost and IP:127.0.0.1) and its key
#                           (EC P-256, PKCS#8, unencrypted, mode 0600)
#   server-bundle.pem       server.key + server.pem + ca.pem: a PEM
#                           keystore (Kafka's ssl.keystore.type=PEM)
#   other-ca.pem            an unrelated CA, for "wrong CA" tests
#
# Files that exist and stay valid for another day are kept, so that
# servers started earlier keep trusting the same CA; anything missing,
# expiring or not signed by ca.pem is made again, all of it.  Prints
# nothing on success.  tests/services/ctl runs it for its servers
# ($WORKQ_SERVICES_DIR/tls); tests run it for their own directories.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
command -v openssl >/dev/null || { echo "mkcerts: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

valid() {
    for f in ca.pem ca.key server.pem server.key server-bundle.pem other-ca.pem; do
        [ -s "$f" ] || return 1
    done
    openssl x509 -checkend 86400 -noout -in ca.pem >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in server.pem >/dev/null 2>&1 &&
        openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1
}
valid && exit 0

umask 077
tmp=$(mktemp -d "./.mkcerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
serial() { printf '0x%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }
newkey="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

for ca in ca other-ca; do
    # shellcheck disable=SC2086
    openssl req -x509 $newkey -config "$tmp/ext.cnf" -extensions ca \
        -subj "/CN=workq test CA ($ca)" -days 3650 -set_serial "$(serial)" \
        -keyout "$tmp/$ca.key" -out "$tmp/$ca.pem" 2>"$tmp/log" ||
        { cat "$tmp/log" >&2; exit 1; }
done
# shellcheck disable=SC2086
openssl req -new $newkey -config "$tmp/ext.cnf" -subj "/CN=localhost" \
    -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>"$tmp/log" ||
    { cat "$tmp/log" >&2; exit 1; }
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
    -set_serial "$(serial)" -days 3650 -extfile "$tmp/ext.cnf" \
    -extensions server -out "$tmp/server.pem" 2>"$tmp/log" ||
    { cat "$tmp/log" >&2; exit 1; }
cat "$tmp/server.key" "$tmp/server.pem" "$tmp/ca.pem" >"$tmp/server-bundle.pem"
chmod 0644 "$tmp/ca.pem" "$tmp/other-ca.pem" "$tmp/server.pem"
chmod 0600 "$tmp/ca.key" "$tmp/other-ca.key" "$tmp/server.key" "$tmp/server-bundle.pem"
for f in ca.pem ca.key other-ca.pem other-ca.key server.pem server.key server-bundle.pem; do
    mv -f "$tmp/$f" "./$f"
done
valid || { echo "mkcerts: the new certificates do not verify" >&2; exit 1; }
