#!/usr/bin/env bash
# Installs what lowbit needs to build and test, idempotently:
#   Debian packages (compiler, CMake, Ninja, GoogleTest, Google Benchmark, CLI11, nlohmann-json, fmt)
#   and a Python venv in .venv with the independent references (numpy, ml_dtypes, gguf).
# Re-running it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang-16 + libclang-rt-16-dev: the libFuzzer build (scripts/fuzz.sh; clang 14 cannot compile lowbit).
apt_packages=(g++ cmake ninja-build libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev
              libfmt-dev python3-venv clang-16 libclang-rt-16-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi

python_requirements=(numpy==2.4.6 ml_dtypes==0.6.0 gguf==0.19.0 sentencepiece==0.2.3 tokenizers==0.23.3)
if ! .venv/bin/python -c "import numpy, ml_dtypes, gguf, sentencepiece, tokenizers" >/dev/null 2>&1; then
  echo "setup: creating .venv with ${python_requirements[*]}"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check "${python_requirements[@]}"
fi
echo "setup: ok"
