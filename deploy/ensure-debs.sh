#!/bin/sh
# Install the Debian packages named as arguments when they are missing.
# Used by `make test` (and `make run` for mosquitto); needs root or sudo.
set -e
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "camnode: please install these Debian packages:$missing" >&2; exit 1
fi
echo "camnode: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
