#!/usr/bin/env bash
# ensure-unix-user.sh NAME - makes sure NAME is an ordinary unprivileged account (uid >= UID_MIN of
# /etc/login.defs, own group, home directory, nologin shell) so that Slurm jobs can run as it and
# antennad accepts it as a user's mapping. Idempotent. An existing account with a system uid (below
# UID_MIN, as earlier versions of this script made) is moved to a free regular uid and gid, and its
# home's ownership follows. Never creates, changes or accepts an account with uid 0 or gid 0, and
# never touches root, the munge account or an account whose shell is not nologin/false.
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
case "$name" in root | munge | slurm | daemon | nobody) die "refusing to use $name: jobs must run as an account of their own" ;; esac

uid_min=$(awk '$1 == "UID_MIN" && $2 ~ /^[0-9]+$/ { v = $2 } END { print v ? v : 1000 }' /etc/login.defs 2> /dev/null || echo 1000)
uid_max=$(awk '$1 == "UID_MAX" && $2 ~ /^[0-9]+$/ { v = $2 } END { print v ? v : 60000 }' /etc/login.defs 2> /dev/null || echo 60000)

need_root() { [ "$(id -u)" -eq 0 ] || die "$1; run this script as root"; }

# free_id passwd|group: the lowest id in [uid_min, uid_max] that the database does not use.
free_id() {
    getent "$1" | awk -F: -v lo="$uid_min" -v hi="$uid_max" '
        { used[$3] = 1 } END { for (i = lo; i <= hi; i++) if (!(i in used)) { print i; exit } }'
}

if ! getent passwd "$name" > /dev/null; then
    need_root "account $name does not exist"
    if getent group "$name" > /dev/null; then
        useradd --create-home --home-dir "/home/$name" --shell /usr/sbin/nologin \
            --gid "$name" "$name"
    else
        useradd --create-home --home-dir "/home/$name" --shell /usr/sbin/nologin \
            --user-group "$name"
    fi
fi

IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$name")
[ "$uid" -ne 0 ] || die "account $name has uid 0; refusing to run jobs as it"
[ "$gid" -ne 0 ] || die "account $name has primary gid 0; refusing to run jobs as it"

if [ "$uid" -lt "$uid_min" ]; then
    # an account of ours made as a system account: give it a regular uid (and its own group a
    # regular gid), and its home's files with it
    case "$shell" in */nologin | */false) ;; *) die "account $name has uid $uid < UID_MIN $uid_min and a login shell ($shell): not one of ours, fix it by hand" ;; esac
    need_root "account $name has a system uid ($uid < UID_MIN $uid_min)"
    old_uid=$uid old_gid=$gid
    new_uid=$(free_id passwd)
    [ -n "$new_uid" ] || die "no free uid between $uid_min and $uid_max"
    # (usermod also moves the ownership of the files in its home)
    usermod -u "$new_uid" "$name" > /dev/null ||
        die "cannot move $name to uid $new_uid (a process running as $name? stop it and run this again)"
    group=$(getent group "$old_gid" | cut -d: -f1)
    if [ "$group" = "$name" ] && [ "$old_gid" -lt "$uid_min" ]; then
        new_gid=$(free_id group)
        [ -n "$new_gid" ] || die "no free gid between $uid_min and $uid_max"
        groupmod -g "$new_gid" "$name"
    fi
    IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$name")
    if [ -d "$home" ]; then
        find "$home" -xdev \( -uid "$old_uid" -o -gid "$old_gid" \) -print0 2> /dev/null |
            xargs -0 -r chown -h "$uid:$gid" 2> /dev/null || true
    fi
    echo "ensure-unix-user: moved $name from uid $old_uid to $uid (gid $gid)" >&2
fi

if [ ! -d "$home" ]; then
    need_root "home $home of $name is missing"
    install -d -m 0750 -o "$uid" -g "$gid" "$home"
fi
echo "$name $uid $gid $home"
