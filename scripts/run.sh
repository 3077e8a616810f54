#!/usr/bin/env bash
# The main job: build Kite, then generate text. Without arguments it continues a prompt with the
# zoo teacher from ../shared; any arguments are passed to `kite generate` instead, e.g.
#   scripts/run.sh -m path/to/model.gguf -p "Hello" -n 64
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
if [ $# -eq 0 ]; then
  set -- -p "Once upon a time, there was a" -n 64
fi
exec ./build/kite generate "$@"
