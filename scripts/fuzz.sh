#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan + libFuzzer), makes their
# seed corpora and runs each for a bounded time; exits non-zero if any fuzzer finds a crash, a leak,
# a timeout or an out-of-memory input (the input is kept under BUILD/crashes/<fuzzer>/).
#
#   scripts/fuzz.sh [fuzzer ...]          (default: every fuzz/fuzz_*.cc target)
#
# Environment:
#   LOWBIT_FUZZ_SECONDS    seconds per fuzzer (default 45: 8 fuzzers, 2 at a time, ~3 minutes)
#   LOWBIT_FUZZ_JOBS       fuzzers run at the same time (default 2)
#   LOWBIT_FUZZ_BUILD_DIR  an already configured LOWBIT_FUZZ=ON build folder (default: the `fuzz`
#                          preset, build/fuzz)
#   LOWBIT_SHARED_DATA     real model files for seeds (default ../shared/data)
#
# Layout under the build folder: corpus/<fuzzer>/ (seeds + what the fuzzer found, kept between
# runs), crashes/<fuzzer>/, logs/<fuzzer>.log, summary.md and summary.json (executions, seconds,
# result per fuzzer). docs/hardening.md explains how to turn a crash into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOWBIT_FUZZ_SECONDS:-45}
jobs=${LOWBIT_FUZZ_JOBS:-2}
shared=${LOWBIT_SHARED_DATA:-../shared/data}
if [ -n "${LOWBIT_FUZZ_BUILD_DIR:-}" ]; then
  build=$LOWBIT_FUZZ_BUILD_DIR
else
  build=build/fuzz
  cmake --preset fuzz >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target lowbit_fuzzers lowbit_fuzz_seeds

if [ $# -gt 0 ]; then
  fuzzers=("$@")
else
  fuzzers=()
  for f in fuzz/fuzz_*.cc; do fuzzers+=("$(basename "$f" .cc)"); done
fi

# Largest input per fuzzer: above its biggest seed, small enough for thousands of runs a second.
max_len_of() {
  case "$1" in
    fuzz_gguf | fuzz_gguf_tokenizer | fuzz_tokenizer_json) echo 65536 ;;
    fuzz_llama2c) echo 16384 ;;
    fuzz_llama2c_tokenizer) echo 8192 ;;
    fuzz_format_spec) echo 256 ;;
    fuzz_rules) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

# Seeds: committed hand-made ones, generated ones (tiny models, cuts of the real files) and every
# stored regression input.
generated=$build/generated_seeds
rm -rf "$generated"
if [ -d "$shared/stories260K" ]; then
  "$build/bin/lowbit_fuzz_seeds" "$generated" "$shared"
else
  echo "fuzz: $shared not found: seeds from the real model files are skipped"
  "$build/bin/lowbit_fuzz_seeds" "$generated"
fi
for name in "${fuzzers[@]}"; do
  mkdir -p "$build/corpus/$name" "$build/crashes/$name" "$build/logs"
  for dir in "fuzz/seeds/$name" "$generated/$name" "tests/data/fuzz_regressions/$name"; do
    if [ -d "$dir" ]; then cp -f "$dir"/* "$build/corpus/$name/" 2>/dev/null || true; fi
  done
done

run_one() {
  local name=$1
  local start=$SECONDS
  local extra=()
  case $name in fuzz_format_spec | fuzz_rules) extra+=("-dict=$generated/format_spec.dict") ;; esac
  # -malloc_limit_mb: no single allocation may exceed 512 MB for inputs of at most 64 KB.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/bin/$name" "$build/corpus/$name" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len="$(max_len_of "$name")" -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$name/" "${extra[@]}" \
    >"$build/logs/$name.log" 2>&1 && rc=0 || rc=$?
  echo "$rc" >"$build/logs/$name.rc"
  echo $((SECONDS - start)) >"$build/logs/$name.secs"
}

declare -A status=()
running=0
for name in "${fuzzers[@]}"; do
  rm -f "$build/crashes/$name"/* "$build/logs/$name.rc" "$build/logs/$name.secs"
  echo "fuzz: $name for ${seconds}s"
  run_one "$name" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
for name in "${fuzzers[@]}"; do
  status[$name]=$(cat "$build/logs/$name.rc" 2>/dev/null || echo 1)
done

# Per-fuzzer statistics from libFuzzer's final report.
failed=0
json_rows=()
{
  echo "# Fuzzing summary"
  echo
  echo "${seconds} s per fuzzer, ASan + UBSan + libFuzzer, $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "| fuzzer | executions | seconds | exec/s | corpus | result |"
  echo "| --- | ---: | ---: | ---: | ---: | --- |"
} >"$build/summary.md"
for name in "${fuzzers[@]}"; do
  log=$build/logs/$name.log
  runs=$(grep -o 'stat::number_of_executed_units:[[:space:]]*[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  secs=$(cat "$build/logs/$name.secs" 2>/dev/null || true)
  rate=$(grep -o 'stat::average_exec_per_sec:[[:space:]]*[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  corpus=$(find "$build/corpus/$name" -type f | wc -l)
  artifact=$(find "$build/crashes/$name" -type f | head -1)
  result=ok
  if [ "${status[$name]}" -ne 0 ] || [ -n "$artifact" ]; then
    result="FAILED (exit ${status[$name]}${artifact:+, input $artifact})"
    failed=1
    echo "fuzz: $name FAILED; log $log" >&2
    grep -E "ERROR|SUMMARY|FUZZ_CHECK|runtime error" "$log" | head -5 >&2 || true
  fi
  echo "| $name | ${runs:-?} | ${secs:-?} | ${rate:-?} | $corpus | $result |" >>"$build/summary.md"
  json_rows+=("{\"fuzzer\": \"$name\", \"executions\": ${runs:-0}, \"seconds\": ${secs:-0}, \"exec_per_sec\": ${rate:-0}, \"corpus\": $corpus, \"ok\": $([ "$result" = ok ] && echo true || echo false), \"artifact\": \"${artifact}\"}")
done
{
  echo "{\"seconds_per_fuzzer\": $seconds, \"fuzzers\": ["
  for i in "${!json_rows[@]}"; do
    sep=","
    [ "$i" -eq $((${#json_rows[@]} - 1)) ] && sep=""
    echo "  ${json_rows[$i]}$sep"
  done
  echo "]}"
} >"$build/summary.json"
cat "$build/summary.md"
exit $failed
