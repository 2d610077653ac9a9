#!/usr/bin/env bash
# Installs the Debian packages mlxr needs to build and test. Runs apt-get when root; otherwise
# prints the exact command to run.
set -euo pipefail
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libjansson-dev libpcre2-dev python3-jinja2 libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev curl"
# Node.js + npm run the peer benchmark and the official openai/ollama client tests; any node >= 18
# will do, so Debian's packages are added only when no node is installed (e.g. NodeSource's).
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup: all packages present ($PKGS)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing
else
    echo "setup: missing packages:$missing"
    echo "run:   sudo apt-get install -y$missing"
    exit 1
fi
