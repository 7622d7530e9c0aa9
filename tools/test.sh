#!/usr/bin/env bash
# Builds and runs every test: a normal build; an AddressSanitizer + UndefinedBehaviorSanitizer
# build with leak checking (Check runs in one process there, CK_FORK=no, so LeakSanitizer
# sees the whole suite); and a build without the JIT (TJ_JIT=OFF: compiled functions run
# eagerly). Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DTJ_WERROR=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

cmake -S . -B build-asan -DTJ_WERROR=ON -DTJ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j"$jobs"
CK_FORK=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure

cmake -S . -B build-nojit -DTJ_WERROR=ON -DTJ_JIT=OFF
cmake --build build-nojit -j"$jobs"
ctest --test-dir build-nojit --output-on-failure
