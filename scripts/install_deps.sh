#!/bin/sh
# Installs the Debian packages dice needs, when any is missing (run by `make deps`,
# which `make test` and `make demo` run first). Uses sudo when not root.
set -eu
PACKAGES="build-essential pkg-config libopenblas-openmp-dev libhdf5-dev openmpi-bin libopenmpi-dev \
libpng-dev libjpeg-dev libcjson-dev"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all Debian packages present"
    exit 0
fi
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
