#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI): build lowbit,
# list its number formats, generate from "Once upon a time", and measure WikiText-2 perplexity
# at ctx 512 (first 20 chunks; LOWBIT_CHUNKS=0 scores the whole file).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch_models.sh | tail -n 1)
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lowbit_cli
lowbit=build/release/bin/lowbit
data=${LOWBIT_DATA_DIR:-../shared/data}

$lowbit formats
echo
$lowbit run --model "$model" -p "Once upon a time" -n 64 --temp 0
echo
chunks=${LOWBIT_CHUNKS:-20}
chunk_args=()
[ "$chunks" -gt 0 ] && chunk_args=(--chunks "$chunks")
$lowbit eval --model "$model" --text "$data/text/wiki.test.raw" --ctx 512 "${chunk_args[@]}"
