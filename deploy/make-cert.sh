#!/usr/bin/env bash
# make-cert.sh DIR [CN] - makes a development CA and a server certificate for this machine in DIR:
# DIR/ca.pem (+ DIR/ca.key), DIR/server.pem, DIR/server.key (keys 0600). For development only.
# Idempotent: keeps files that exist and stay valid for another day; never overwrites a valid
# certificate. Prints one line naming DIR on success; openssl's chatter is shown only on failure.
#
# The server certificate is signed by the CA and names CN (default "localhost") and, in its
# subjectAltName, DNS:localhost, IP:127.0.0.1, IP:::1 and the machine's hostname.
set -euo pipefail

usage() {
    echo "usage: make-cert.sh DIR [CN]" >&2
    exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
dir=$1
cn=${2:-localhost}
[ -n "$dir" ] || usage
case $cn in
*[!A-Za-z0-9.-]* | "") echo "make-cert: CN '$cn' must be a DNS name (letters, digits, '.', '-')" >&2; exit 2 ;;
esac

command -v openssl >/dev/null || { echo "make-cert: openssl not found; install the openssl package" >&2; exit 1; }

mkdir -p "$dir"
umask 077
log=$(mktemp "$dir/.make-cert.log.XXXXXX")
trap 'rm -f "$log" "$dir"/.new-* "$dir"/.ext-*' EXIT

# run CMD...: runs an openssl command, its output going to the log; on failure shows the log.
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "make-cert: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

# valid CERT: true if CERT exists and is valid for at least one more day.
valid() {
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1
}

# The SAN list: localhost, loopback addresses, the CN and the machine's hostname (when it is a
# plain DNS name).
sans="DNS:localhost,IP:127.0.0.1,IP:::1"
add_dns() {
    case $1 in
    "" | localhost | *[!A-Za-z0-9.-]*) ;;
    *) case ",$sans," in *",DNS:$1,"*) ;; *) sans="$sans,DNS:$1" ;; esac ;;
    esac
}
add_dns "$cn"
add_dns "$(hostname 2>/dev/null || uname -n)"
add_dns "$(hostname -f 2>/dev/null || true)"

# same_key CERT KEY: true if KEY is the private key of CERT.
same_key() {
    [ -s "$2" ] && [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = \
        "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]
}

# 1. The CA (kept while valid; a new CA forces a new server certificate).
new_ca=0
if ! valid "$dir/ca.pem" || ! same_key "$dir/ca.pem" "$dir/ca.key"; then
    run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/.new-ca.key" -out "$dir/.new-ca.pem" -days 3650 -sha256 \
        -subj "/O=Antenna development/CN=Antenna development CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    chmod 0600 "$dir/.new-ca.key"
    chmod 0644 "$dir/.new-ca.pem"
    mv -f "$dir/.new-ca.key" "$dir/ca.key"
    mv -f "$dir/.new-ca.pem" "$dir/ca.pem"
    new_ca=1
fi

# 2. The server certificate (kept while valid, signed by this CA and matching its key).
server_ok() {
    valid "$dir/server.pem" && same_key "$dir/server.pem" "$dir/server.key" &&
        openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1
}
if [ $new_ca -eq 1 ] || ! server_ok; then
    ext="$dir/.ext-server.cnf"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth"
        echo "subjectAltName=$sans"
    } >"$ext"
    run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/.new-server.key" -out "$dir/.new-server.csr" \
        -subj "/O=Antenna development/CN=$cn"
    run openssl x509 -req -in "$dir/.new-server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "$ext" \
        -out "$dir/.new-server.pem"
    chmod 0600 "$dir/.new-server.key"
    chmod 0644 "$dir/.new-server.pem"
    mv -f "$dir/.new-server.key" "$dir/server.key"
    mv -f "$dir/.new-server.pem" "$dir/server.pem"
fi

echo "make-cert: development certificates in $dir"
