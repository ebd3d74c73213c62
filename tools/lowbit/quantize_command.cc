// `lowbit quantize --model IN.gguf --out OUT.gguf --weights SPEC [--acts SPEC] [--attn-acts SPEC]
//  [--kv-acts SPEC] [--rules FILE] [--rule PATTERN=SPEC ...] [--method rtn|aqlm:SCHEME ...]
//  [--json] [--report FILE]`: round-to-nearest of every matrix (calibration-free), or AQLM for the
// linear layers; written atomically. See docs/quantize.md.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "io/file_io.h"
#include "lowbit/aqlm.h"
#include "lowbit/format_registry.h"
#include "lowbit/quantize.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {
namespace {

struct QuantizeCliOptions {
  std::string model;
  std::string out;
  std::string weights;
  std::string acts;
  std::string attn_acts;
  std::string kv_acts;
  std::string rules_file;
  std::vector<std::string> rules;
  std::string report;
  // Calibrated methods: "rtn" (default) or "aqlm:SCHEME" (docs/formats/additive.md).
  std::string method = "rtn";
  CalibrationCliOptions calibration;
  int beam = 1;
  int fine_tune_steps = 0;  // AQLM block fine-tuning: Adam steps per block, 0 = off
  double fine_tune_lr = 1e-3;
  std::string checkpoint_dir;
  bool json = false;
  bool quiet = false;
  int threads = 2;
};

Result<FormatPtr> OptionalFormat(const std::string& spec, const char* option) {
  if (spec.empty()) return FormatPtr();
  Result<FormatPtr> f = ParseFormat(spec);
  if (!f.ok()) return InvalidArgument(std::string(option) + ": " + f.status().message());
  return *f;
}

Result<QuantizeOptions> BuildOptions(const QuantizeCliOptions& o) {
  QuantizeOptions q;
  q.n_threads = o.threads;
  LOWBIT_ASSIGN_OR_RETURN(q.rules.default_format, OptionalFormat(o.weights, "--weights"));
  for (const std::string& text : o.rules) {
    LOWBIT_ASSIGN_OR_RETURN(QuantRule rule, ParseRule(text, "--rule '" + text + "'"));
    q.rules.rules.push_back(std::move(rule));
  }
  if (!o.rules_file.empty()) {
    std::ifstream in(o.rules_file, std::ios::binary);
    if (!in) return NotFound(o.rules_file + ": cannot open the rule file");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LOWBIT_ASSIGN_OR_RETURN(std::vector<QuantRule> rules, ParseRules(text, o.rules_file));
    for (QuantRule& r : rules) q.rules.rules.push_back(std::move(r));
  }
  if (q.rules.default_format == nullptr && q.rules.rules.empty() && o.method == "rtn") {
    return InvalidArgument("give --weights SPEC (and/or --rule / --rules): nothing to quantize");
  }
  LOWBIT_ASSIGN_OR_RETURN(q.activations.linear_inputs, OptionalFormat(o.acts, "--acts"));
  LOWBIT_ASSIGN_OR_RETURN(q.activations.attention, OptionalFormat(o.attn_acts, "--attn-acts"));
  LOWBIT_ASSIGN_OR_RETURN(q.activations.kv_cache, OptionalFormat(o.kv_acts, "--kv-acts"));
  LOWBIT_RETURN_IF_ERROR(ValidateActivationFormats(q.activations));
  return q;
}

nlohmann::json Finite(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json ReportJson(const QuantizeCliOptions& o, const QuantizeReport& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorQuantReport& t : r.tensors) {
    tensors.push_back({{"name", t.name}, {"source_format", t.source_format},
                       {"format", t.format}, {"ggml_type", t.ggml_type}, {"rows", t.rows},
                       {"cols", t.cols}, {"bytes", t.n_bytes}, {"rmse", t.rmse},
                       {"sqnr_db", Finite(t.sqnr_db)}, {"seconds", t.seconds},
                       {"linear", t.linear}, {"note", t.note}});
  }
  const double model_bpw = r.model_bits_per_weight();
  const double linear_bpw = r.linear_bits_per_weight();
  return {{"model", o.model},
          {"out", o.out},
          {"weights", o.weights},
          {"acts", o.acts},
          {"attn_acts", o.attn_acts},
          {"kv_acts", o.kv_acts},
          {"llama_cpp_compatible", r.llama_cpp_compatible},
          {"model_bytes", r.model_bytes},
          {"model_bits_per_weight", model_bpw},
          {"linear_bits_per_weight", linear_bpw},
          {"memory_density", 32.0 / linear_bpw},
          {"activation_bits", r.activation_bits},
          {"activation_memory_density", 32.0 / r.activation_bits},
          {"arithmetic_density_estimate", r.arithmetic_density},
          {"sqnr_db", Finite(r.total_sqnr_db())},
          {"seconds", r.seconds},
          {"read_mb_per_s", r.source_bytes / 1e6 / r.seconds},
          {"tensors", tensors}};
}

void PrintSummary(const QuantizeCliOptions& o, const QuantizeReport& r) {
  const double linear_bpw = r.linear_bits_per_weight();
  fmt::print("wrote {} ({:.2f} MB) in {:.1f} s, {:.1f} MB/s of weights read\n", o.out,
             r.model_bytes / 1e6, r.seconds, r.source_bytes / 1e6 / r.seconds);
  fmt::print("bits/weight: {:.4f} whole model, {:.4f} linears only\n", r.model_bits_per_weight(),
             linear_bpw);
  fmt::print("memory density vs fp32: weights {:.2f}x, activations {:.2f}x ({:.3f} bits)\n",
             32.0 / linear_bpw, 32.0 / r.activation_bits, r.activation_bits);
  fmt::print("arithmetic density vs fp32 (estimate, docs/cost_model.md): {:.2f}x\n",
             r.arithmetic_density);
  fmt::print("total SQNR: {:.2f} dB\n", r.total_sqnr_db());
  fmt::print("llama.cpp types only: {}\n", r.llama_cpp_compatible ? "yes" : "no");
  for (const TensorQuantReport& t : r.tensors) {
    if (t.note.rfind("fallback", 0) == 0) fmt::print("  {}: {}\n", t.name, t.note);
  }
}

// AQLM: calibration sequences, then the whole model quantized layer by layer (progress on
// stderr, a checkpoint per finished block when --checkpoint-dir is given).
Result<LlamaModel> RunAqlm(const QuantizeCliOptions& o, const LoadedModel& loaded) {
  AqlmOptions a;
  a.scheme = o.method.substr(o.method.find(':') + 1);
  a.n_sequences = o.calibration.sequences;
  a.seq_len = o.calibration.length;
  a.beam_width = o.beam;
  a.fine_tune = o.fine_tune_steps > 0;
  if (a.fine_tune) a.fine_tune_steps = o.fine_tune_steps;
  a.fine_tune_lr = o.fine_tune_lr;
  a.checkpoint_dir = o.checkpoint_dir;
  a.n_threads = o.threads;
  a.bos = std::max(0, loaded.tokenizer->bos());
  fmt::print(stderr, "aqlm {}: calibration {} ({} sequences of {} tokens)\n", a.scheme, o.calibration.calib,
             o.calibration.sequences, o.calibration.length);
  LOWBIT_ASSIGN_OR_RETURN(a.calibration, CalibrationSequences(o.calibration, loaded, o.threads, o.quiet));
  return QuantizeModelAqlm(loaded.model, a, [&](const AqlmProgress& p) {
    if (o.quiet) return;
    if (p.fine_tune) {
      fmt::print(stderr,
                 "[layer {}/{}] {:<24} block MSE val {:.4g} -> {:.4g}, train {:.4g} -> {:.4g} "
                 "(kept step {}) {:.0f} s\n",
                 p.layer + 1, p.n_layers, p.tensor, p.fine_tune_val_before, p.fine_tune_val_after,
                 p.fine_tune_train_before, p.fine_tune_train_after, p.fine_tune_best_step,
                 p.elapsed_seconds);
      return;
    }
    fmt::print(stderr, "[layer {}/{}] {:<24} rel. loss {:.5f} ({} iters{}) {:.0f} s, ETA {:.0f} s\n",
               p.layer + 1, p.n_layers, p.tensor, p.relative_loss, p.iterations,
               p.from_checkpoint ? ", checkpoint" : "", p.elapsed_seconds, p.eta_seconds);
  });
}

int RunQuantize(const QuantizeCliOptions& o) {
  Result<QuantizeOptions> options = BuildOptions(o);
  if (!options.ok()) return ReportError(options.status());
  std::optional<LlamaModel> calibrated;
  const auto method_start = std::chrono::steady_clock::now();
  double method_seconds = 0.0;
  if (o.method != "rtn") {
    if (o.method.rfind("aqlm:", 0) != 0) {
      return ReportError(InvalidArgument("--method " + o.method + ": expected rtn or aqlm:SCHEME"));
    }
    Result<LoadedModel> loaded = LoadModelWithTokenizer(o.model, "");
    if (!loaded.ok()) return ReportError(loaded.status());
    Result<LlamaModel> q = RunAqlm(o, *loaded);
    if (!q.ok()) return ReportError(q.status());
    calibrated = std::move(*q);
    options->prequantized = &*calibrated;
    method_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - method_start).count();
  }
  if (!o.quiet && !o.json) {
    fmt::print("{:<28} {:>11} {:>11} {:>7} {:>12} {:>11} {:>10} {:>9}\n", "tensor", "source",
               "format", "ggml", "shape", "bytes", "rmse", "sqnr_db");
  }
  options->on_tensor = [&](const TensorQuantReport& t, int64_t index, int64_t count) {
    if (o.quiet) return;
    const bool kept = t.note == "kept";
    const std::string line = fmt::format(
        "{:<28} {:>11} {:>11} {:>7} {:>12} {:>11} {:>10} {:>9}{}", t.name, t.source_format,
        t.format, t.ggml_type, fmt::format("{}x{}", t.rows, t.cols), t.n_bytes,
        kept ? "-" : fmt::format("{:.3g}", t.rmse), kept ? "-" : fmt::format("{:.2f}", t.sqnr_db),
        t.note.empty() || kept ? "" : "  (" + t.note + ")");
    // With --json the table goes to stderr as progress; stdout carries the JSON only.
    std::FILE* stream = o.json ? stderr : stdout;
    fmt::print(stream, "{}  [{}/{}]\n", line, index + 1, count);
  };
  Result<QuantizeReport> report = QuantizeGgufFile(o.model, o.out, *options);
  if (!report.ok()) return ReportError(report.status());
  report->seconds += method_seconds;  // calibration and training count in the total
  const nlohmann::json json = ReportJson(o, *report);
  if (!o.report.empty()) {
    const std::string text = json.dump(2) + "\n";
    Result<std::unique_ptr<io::AtomicFileWriter>> w = io::AtomicFileWriter::Create(o.report);
    if (!w.ok()) return ReportError(w.status());
    Status st = (*w)->Write(text.data(), text.size());
    if (st.ok()) st = (*w)->Commit();
    if (!st.ok()) return ReportError(st);
  }
  if (o.json) {
    fmt::print("{}\n", json.dump(2));
  } else {
    PrintSummary(o, *report);
  }
  return kExitOk;
}

}  // namespace

void AddQuantizeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Quantize a GGUF model by round-to-nearest (no calibration) into a new GGUF file.\n"
      "Matrices take --weights unless a rule names another format; 1-D tensors are copied.\n"
      "If every format is a llama.cpp type the file loads in llama.cpp unchanged.");
  cmd->add_option("-m,--model", o->model, "input GGUF model")->required();
  cmd->add_option("-o,--out", o->out, "output GGUF file (written atomically)")->required();
  cmd->add_option("-w,--weights", o->weights,
                  "format of every matrix no rule names (preset or spec; `lowbit formats`)");
  cmd->add_option("--acts", o->acts,
                  "activation format (WxAy): input rows of every linear layer, per token");
  cmd->add_option("--attn-acts", o->attn_acts,
                  "format of both operands of the two attention matmuls (q, k, softmax, v rows)");
  cmd->add_option("--kv-acts", o->kv_acts, "format of keys and values written to the KV cache");
  cmd->add_option("--rules", o->rules_file,
                  "rule file: lines 'GLOB = SPEC|keep' (docs/rules.md); first match wins");
  cmd->add_option("--rule", o->rules, "one rule 'GLOB=SPEC|keep' (repeatable; before --rules)");
  cmd->add_option("--method", o->method,
                  "rtn (round to nearest, default) or aqlm:SCHEME (e.g. aqlm:aqlm_2x8g8): "
                  "calibrated additive codebooks for the linear layers")->capture_default_str();
  o->calibration.AddTo(cmd);
  cmd->add_option("--beam", o->beam, "AQLM beam width of the code search")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--fine-tune-steps", o->fine_tune_steps,
                  "AQLM block fine-tuning: Adam steps per block on codebooks and scales (codes "
                  "frozen; keeps the best on held-out calibration sequences); 0 = off")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  cmd->add_option("--fine-tune-lr", o->fine_tune_lr,
                  "AQLM fine-tuning learning rate, relative to each parameter group's RMS")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                  "AQLM: save each finished block here; a rerun resumes from it");
  cmd->add_option("-t,--threads", o->threads, "threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", o->json, "print the report as JSON on stdout (the table goes to stderr)");
  cmd->add_option("--report", o->report, "also write the JSON report to this file");
  cmd->add_flag("-q,--quiet", o->quiet, "no per-tensor lines");
  cmd->callback([o, exit_code] { *exit_code = RunQuantize(*o); });
}

}  // namespace lowbit::cli
