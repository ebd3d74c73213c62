// Subcommands of the `lowbit` CLI: each file adds one CLI11 subcommand whose callback stores the
// process exit code (0 ok, 1 runtime failure, 2 bad input).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "lowbit/model.h"
#include "lowbit/status.h"

namespace lowbit::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;

// Prints "lowbit: <message>" to stderr and returns the exit code for the status.
int ReportError(const Status& status);

// For --weights SPEC: replaces model's matrices by their round-to-nearest quantization into SPEC
// (no-op for an empty spec).
Status QuantizeModelInPlace(const std::string& spec, LlamaModel& model);

// --acts / --attn-acts / --kv-acts: activation formats (WxAy) applied at run time; they replace
// the formats a quantized GGUF file carries only where given.
struct ActivationCliOptions {
  std::string linear_inputs, attention, kv_cache;
  void AddTo(CLI::App* cmd);
};
Status ApplyActivationFormats(const ActivationCliOptions& options, LlamaModel& model);

// --calib / --calib-seqs / --calib-len / --calib-skip of the calibrated methods.
struct CalibrationCliOptions {
  std::string calib = "self";  // text file, or "self": sample from the unquantized model
  int64_t sequences = 32;
  int64_t length = 128;
  int64_t skip_tokens = 0;  // text only: tokens skipped before the first sequence
  void AddTo(CLI::App* cmd);
};
// The text cut into `sequences` sequences of BOS + (length - 1) tokens after its first
// `skip_tokens` (CutCalibrationText), or (calib "self")
// sequences sampled from loaded.model (temperature 1, seed 0: the same ones on every run),
// with progress on stderr unless quiet.
Result<std::vector<std::vector<int32_t>>> CalibrationSequences(const CalibrationCliOptions& options,
                                                               const LoadedModel& loaded, int threads,
                                                               bool quiet);

void AddFormatsCommand(CLI::App& app, int* exit_code);
void AddQdqCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddEvalCommand(CLI::App& app, int* exit_code);
void AddQuantizeCommand(CLI::App& app, int* exit_code);
void AddSweepCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddExportHfAqlmCommand(CLI::App& app, int* exit_code);
void AddFinetuneAqlmCommand(CLI::App& app, int* exit_code);

}  // namespace lowbit::cli
