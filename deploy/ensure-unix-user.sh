#!/usr/bin/env bash
# ensure-unix-user.sh NAME - makes sure the unprivileged system account NAME exists (own group, home
# directory, nologin shell) so that Slurm jobs can run as it. Idempotent. Never creates, changes or
# accepts an account with uid 0 or gid 0.
# Prints one line on stdout: "NAME UID GID HOME".
set -euo pipefail

die() {
    echo "ensure-unix-user: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: ensure-unix-user.sh NAME"
name=$1
[[ "$name" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] ||
    die "'$name' is not a valid account name (lowercase letters, digits, '_' and '-', at most 31 characters)"
[ "$name" != root ] || die "refusing to use root: jobs must run as an unprivileged account"

if ! getent passwd "$name" >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "account $name does not exist; run this script as root to create it"
    if getent group "$name" >/dev/null; then
        useradd --system --create-home --home-dir "/home/$name" --shell /usr/sbin/nologin \
            --gid "$name" "$name"
    else
        useradd --system --create-home --home-dir "/home/$name" --shell /usr/sbin/nologin \
            --user-group "$name"
    fi
fi

IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$name")
[ "$uid" -ne 0 ] || die "account $name has uid 0; refusing to run jobs as it"
[ "$gid" -ne 0 ] || die "account $name has primary gid 0; refusing to run jobs as it"
if [ ! -d "$home" ]; then
    [ "$(id -u)" -eq 0 ] || die "home $home of $name is missing; run this script as root to create it"
    install -d -m 0750 -o "$uid" -g "$gid" "$home"
fi
echo "$name $uid $gid $home"
