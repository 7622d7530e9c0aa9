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

# ---- fuzzing: the safetensors reader under libFuzzer + ASan + UBSan for 20 s, seeded with the
# fixtures. Needs clang and its fuzzer runtime (Debian: clang libclang-rt-14-dev); else skipped.
probe=$(mktemp -d)
if command -v clang >/dev/null 2>&1 &&
   echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
     clang -x c - -fsanitize=fuzzer -o "$probe/probe" >/dev/null 2>&1; then
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTJ_FUZZ=ON -DTJ_JIT=OFF -DTJ_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors
  rm -rf build-fuzz/corpus && mkdir build-fuzz/corpus && cp tests/data/*.safetensors build-fuzz/corpus/
  ./build-fuzz/fuzz_safetensors -max_total_time=20 -timeout=10 -print_final_stats=1 \
    -dict=tests/data/safetensors.dict -artifact_prefix=build-fuzz/ build-fuzz/corpus
else
  echo "test.sh: clang with libFuzzer not found: fuzzing skipped (Debian: apt-get install clang libclang-rt-14-dev)"
fi
rm -rf "$probe"
# ---- end of fuzzing ----------------------------------------------------------------------------
