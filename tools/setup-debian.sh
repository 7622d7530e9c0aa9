#!/usr/bin/env bash
# Installs the Debian packages tapejit needs, skipping those already installed.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
packages=(gcc cmake make pkg-config libopenblas-dev check libcjson-dev llvm-16-dev clang libclang-rt-14-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
