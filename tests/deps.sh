#!/bin/sh
# Installs the Debian packages mailspool builds and tests with, when run as
# root; otherwise prints the exact command to run. Never downloads anything
# but Debian packages.
PKGS="build-essential pkg-config libcurl4-openssl-dev libevent-dev libsqlite3-dev
libcjson-dev libsystemd-dev libcmocka-dev python3 python3-aiosmtpd python3-pytest python3-pytest-xdist
openssl sqlite3 mandoc systemd logrotate man-db groff-base libseccomp2 libfaketime
clang libclang-rt-14-dev valgrind"
missing=""
for p in $PKGS; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$s" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
    echo "deps: missing Debian packages. Run as root:" >&2
    echo "  apt-get install$missing" >&2
    exit 1
fi
