#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI): build lowbit and
# run `lowbit sweep` with no arguments: round-to-nearest of the linear layers at 72 points (ten
# format families, W8A8 ... W4A4, W4A8 and weight-only W8 ... W2), each scored against the
# unquantized model on WikiText-2 (PPL, KLD, top-1). Writes sweep-out/sweep.{md,csv,json,svg}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_models.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lowbit_cli
data=${LOWBIT_DATA_DIR:-../shared/data}
build/release/bin/lowbit sweep --text "$data/text/wiki.test.raw" --out sweep-out
