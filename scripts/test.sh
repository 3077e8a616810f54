#!/usr/bin/env bash
# Builds Kite and runs every test: the full suite on a Release build, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer (skipping only the perplexity runs, which take
# minutes there and exercise no code the other tests do not).
# Tests run one at a time: they use both cores themselves (OpenMP), and two at once would
# oversubscribe a small machine.
# Shared test material: $KITE_SHARED, default ../shared (tests skip with a message without it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)

echo "== Release build + full test suite"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

echo "== ASan/UBSan build + tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKITE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -E 'GoldenPerplexity'
echo "== all tests passed"
