#!/bin/sh
# Installs Vigil from this tarball on any x86_64 Linux (the binary is static:
# no libraries needed), as root:
#
#   sudo ./install.sh            # into /usr/local, units into /etc/systemd/system
#   sudo PREFIX=/opt/vigil ./install.sh
#   DESTDIR=/tmp/stage ./install.sh   # only copy files under DESTDIR (packagers, tests)
#
# It creates the system users vigil (server) and vigil-agent (agent) and
# /var/lib/vigil, installs the binary, manual pages, shell completions, the
# two systemd units (neither enabled nor started) and the default settings
# in /etc/vigil (an existing settings file is kept; the new one is put
# beside it as .new). Then: edit /etc/vigil/server.toml and
# `systemctl enable --now vigil-server`; or enroll the agent and
# `systemctl enable --now vigil-agent`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}

if [ -z "$dest" ] && [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (or set DESTDIR to only stage the files)" >&2
    exit 1
fi

# A system user and its group, with useradd (shadow) or BusyBox adduser.
make_user() {
    user=$1 home=$2
    if getent passwd "$user" >/dev/null 2>&1; then
        return
    fi
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    if command -v useradd >/dev/null; then
        useradd --system --user-group --home-dir "$home" --no-create-home --shell "$nologin" "$user"
    elif command -v adduser >/dev/null && command -v addgroup >/dev/null; then
        addgroup -S "$user"
        adduser -S -D -H -h "$home" -s "$nologin" -G "$user" "$user"
    else
        echo "$0: cannot create the user $user: no useradd or adduser" >&2
        exit 1
    fi
    echo "created system user $user"
}

if [ -z "$dest" ]; then
    make_user vigil /var/lib/vigil
    make_user vigil-agent /var/lib/vigil-agent
    if [ ! -e /var/lib/vigil ]; then
        install -d -o vigil -g vigil -m 0750 /var/lib/vigil
    fi
fi

install -d "$dest$prefix/bin" "$dest$prefix/share/man/man1" \
    "$dest$prefix/share/bash-completion/completions" "$dest$prefix/share/zsh/site-functions" \
    "$dest$prefix/share/fish/vendor_completions.d" "$dest/etc/systemd/system" "$dest/etc/vigil"
install -m 0755 "$here/vigil" "$dest$prefix/bin/vigil"
for page in "$here"/man/*.1; do
    install -m 0644 "$page" "$dest$prefix/share/man/man1/"
done
install -m 0644 "$here/completions/vigil.bash" "$dest$prefix/share/bash-completion/completions/vigil"
install -m 0644 "$here/completions/_vigil" "$dest$prefix/share/zsh/site-functions/_vigil"
install -m 0644 "$here/completions/vigil.fish" "$dest$prefix/share/fish/vendor_completions.d/vigil.fish"

# The units name /usr/bin/vigil (the packages' path): point them at ours.
for unit in vigil-server.service vigil-agent.service; do
    sed "s|/usr/bin/vigil |$prefix/bin/vigil |" "$here/systemd/$unit" >"$dest/etc/systemd/system/$unit"
    chmod 0644 "$dest/etc/systemd/system/$unit"
done

for conf in server.toml agent.toml; do
    target=$dest/etc/vigil/$conf
    if [ -e "$target" ] && ! cmp -s "$here/etc/$conf" "$target"; then
        install -m 0644 "$here/etc/$conf" "$target.new"
        echo "kept $target; the new default is $target.new"
    else
        install -m 0644 "$here/etc/$conf" "$target"
    fi
done

# Only with systemd running (not in a container, chroot or image build).
if [ -z "$dest" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "installed Vigil $("$dest$prefix/bin/vigil" --version | cut -d' ' -f2) into $dest$prefix"
echo "next: edit /etc/vigil/server.toml, then systemctl enable --now vigil-server"
echo "  or: vigil agent enroll --server … --token … --pin …, then systemctl enable --now vigil-agent"
