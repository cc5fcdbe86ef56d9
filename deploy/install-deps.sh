#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages Antenna needs to build, test and run a dev Slurm
# cluster. Idempotent: installs only what is missing, and never touches anything else (no config,
# no service). Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang clang-format openssl sqlite3 curl
    libuv1-dev libhttp-parser-dev libssl-dev libjansson-dev libsqlite3-dev
    libslurm-dev slurmctld slurmd slurm-client munge libmunge-dev
    libcurl4-openssl-dev libcmocka-dev passwd procps iproute2
    wrk slurmrestd python3
    slurmdbd mariadb-server mariadb-client
    chromium fonts-dejavu-core nodejs
)
# The web console's browser test: Debian's chromium, driven by playwright-core from npm. npm comes
# with nodejs on some installs (NodeSource's): ask Debian for it only when there is none.
command -v npm > /dev/null 2>&1 || PACKAGES+=(npm)

# One dpkg-query for all packages: prints "name status" for the ones dpkg knows about.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! grep -qx "$p ii *" <<<"$installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as root to install them" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages such as mariadb-server, munge and slurmctld start a system service when installed;
# Antenna runs its own daemons in private folders instead, so no service may start: a
# policy-rc.d that denies every start, for the time of the install (unless one is already there).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# made by Antenna install-deps.sh for one apt-get install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# Check that every package really is installed now.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for p in "${PACKAGES[@]}"; do
    if ! grep -qx "$p ii *" <<<"$installed"; then
        echo "install-deps: $p is still not installed" >&2
        exit 1
    fi
done
echo "install-deps: installed ${#missing[@]} package(s)"
