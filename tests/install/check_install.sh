#!/usr/bin/env bash
# Installs tapejit into a temporary prefix, then builds examples/matmul.c against it the
# two usual ways (pkg-config, CMake find_package) and runs both. Usage: check_install.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
# pkg-config
PKG_CONFIG_PATH="$libdir/pkgconfig" cc -std=c11 "$here/../../examples/matmul.c" -o "$prefix/by_pkgconfig" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs tapejit)
"$prefix/by_pkgconfig" | grep -q "shape=(2, 2), dtype=int32"
# CMake package
cmake -S "$here" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$prefix/consumer" > /dev/null
"$prefix/consumer/consumer" | grep -q "shape=(2, 2), dtype=int32"
test -x "$prefix/bin/tj-bench"
echo "install: pkg-config and find_package consumers built and ran"
