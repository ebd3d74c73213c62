#!/usr/bin/env bash
# The main job: build lowbit and show its number formats (the runtime and sweep land later).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lowbit_cli
build/release/bin/lowbit formats
printf '957 1 2 3 %s\n' "$(seq -s ' ' 4 31)" | build/release/bin/lowbit qdq --format mxfp8_e4m3 | head -4
