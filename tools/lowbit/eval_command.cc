// `lowbit eval --model M --text FILE [--ctx N] [--chunks K] [--all-tokens] [--reference R]
//  [--save-logits F] [--reference-logits F] [--json] [--quiet] [--threads N]`:
// perplexity as llama.cpp's llama-perplexity computes it, and KL divergence against a reference
// (a second model, or logits saved by an earlier --save-logits run). See docs/eval.md.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "lowbit/eval.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {
namespace {

struct EvalCliOptions {
  std::string model;
  ActivationCliOptions acts;
  bool exact = false;  // exact kernels (f32 activations into every product)
  std::string weights;  // optional format spec: quantize --model's matrices in memory (RTN)
  std::string tokenizer;
  std::string text;
  int64_t ctx = 512;
  int64_t chunks = -1;
  bool all_tokens = false;
  std::string reference;
  std::string save_logits;
  int64_t save_top_k = 0;
  std::string reference_logits;
  bool json = false;
  bool quiet = false;
  int threads = 2;
  // Whether --ctx / --chunks / --all-tokens were given (else a reference file supplies them).
  bool ctx_given = false;
  bool chunks_given = false;
  bool all_tokens_given = false;
};

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open the text file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return IoError(path + ": read failed");
  return text;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Progress on stderr: a redrawn bar on a terminal, one line per chunk otherwise.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(::isatty(2) == 1) {}
  void Update(int64_t done, int64_t total, int64_t scored, double ppl) {
    if (!enabled_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = elapsed / static_cast<double>(done) * static_cast<double>(total - done);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / total);
      fmt::print(stderr, "\r[{}{}] {}/{} chunks, {} tokens, PPL {:.4f}, {} elapsed, ETA {}   ",
                 std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total, scored,
                 ppl, FormatDuration(elapsed), FormatDuration(eta));
      if (done == total) fmt::print(stderr, "\n");
    } else {
      fmt::print(stderr, "[{}/{}] {} tokens, PPL {:.4f}, {} elapsed, ETA {}\n", done, total, scored,
                 ppl, FormatDuration(elapsed), FormatDuration(eta));
    }
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int RunEval(EvalCliOptions o) {
  Result<LoadedModel> loaded = LoadModelWithTokenizer(o.model, o.tokenizer);
  if (!loaded.ok()) return ReportError(loaded.status());
  if (Status st = QuantizeModelInPlace(o.weights, loaded->model); !st.ok()) return ReportError(st);
  if (Status st = ApplyActivationFormats(o.acts, loaded->model); !st.ok()) return ReportError(st);
  if (o.exact) UseExactKernels(loaded->model);
  const Tokenizer& tokenizer = *loaded->tokenizer;

  std::unique_ptr<LogitsFileReader> reference_file;
  if (!o.reference_logits.empty()) {
    Result<std::unique_ptr<LogitsFileReader>> opened = LogitsFileReader::Open(o.reference_logits);
    if (!opened.ok()) return ReportError(opened.status());
    reference_file = std::move(*opened);
    // Settings not given on the command line follow the reference run.
    const LogitsFileHeader& h = reference_file->header();
    if (!o.ctx_given) o.ctx = h.ctx;
    if (!o.chunks_given) o.chunks = h.n_chunks;
    if (!o.all_tokens_given) o.all_tokens = h.first_scored == 0;
  }
  Result<std::string> text = ReadText(o.text);
  if (!text.ok()) return ReportError(text.status());
  const std::vector<int32_t> tokens = tokenizer.Encode(*text, tokenizer.add_bos_default());

  SessionOptions session_options;
  session_options.max_tokens = o.ctx;
  session_options.n_threads = o.threads;
  LlamaSession session(loaded->model, session_options);
  std::unique_ptr<LoadedModel> reference_model;
  std::unique_ptr<LlamaSession> reference_session;
  if (!o.reference.empty()) {
    Result<LoadedModel> ref = LoadModelWithTokenizer(o.reference, "");
    if (!ref.ok()) return ReportError(ref.status());
    reference_model = std::make_unique<LoadedModel>(std::move(*ref));
    if (o.exact) UseExactKernels(reference_model->model);
    reference_session = std::make_unique<LlamaSession>(reference_model->model, session_options);
  }

  EvalOptions options;
  options.ctx = o.ctx;
  options.max_chunks = o.chunks;
  options.all_tokens = o.all_tokens;
  options.replace_bos = tokenizer.add_bos_default();
  options.bos = tokenizer.bos();
  options.save_logits_path = o.save_logits;
  options.save_top_k = o.save_top_k;
  Progress progress(!o.quiet);
  options.progress = [&](int64_t done, int64_t total, int64_t scored, double ppl) {
    progress.Update(done, total, scored, ppl);
  };
  if (!o.quiet) {
    fmt::print(stderr, "{}: {} tokens; {} chunks of {} ({}), {} threads\n", o.text, tokens.size(),
               o.chunks >= 0 ? std::min<int64_t>(o.chunks, tokens.size() / o.ctx)
                             : static_cast<int64_t>(tokens.size()) / o.ctx,
               o.ctx, o.all_tokens ? "all tokens scored" : "second half scored", o.threads);
  }
  Result<EvalResult> r =
      Evaluate(session, tokens, options, reference_session.get(), reference_file.get());
  if (!r.ok()) return ReportError(r.status());
  const double tokens_per_s = static_cast<double>(r->tokens_processed) / r->seconds;

  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["text"] = o.text;
    j["ctx"] = r->ctx;
    j["n_chunks"] = r->n_chunks;
    j["n_tokens"] = r->perplexity.count;
    j["ppl"] = r->perplexity.ppl;
    j["ppl_stderr"] = r->perplexity.ppl_stderr;
    j["mean_nll"] = r->perplexity.mean_nll;
    j["seconds"] = r->seconds;
    j["tokens_per_second"] = tokens_per_s;
    if (r->has_reference) {
      j["reference_ppl"] = r->reference_perplexity.ppl;
      j["kld_mean"] = r->kld.mean;
      j["kld_stderr"] = r->kld.stderr_mean;
      j["kld_median"] = r->kld.median;
      j["kld_p99"] = r->kld.p99;
      j["kld_max"] = r->kld.max;
      j["top1_agreement"] = r->kld.top1_agreement;
      j["ppl_ratio"] = r->kld.ppl_ratio;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    fmt::print("PPL = {:.4f} +/- {:.5f} ({} tokens, {} chunks of {}; mean NLL {:.5f})\n",
               r->perplexity.ppl, r->perplexity.ppl_stderr, r->perplexity.count, r->n_chunks,
               r->ctx, r->perplexity.mean_nll);
    if (r->has_reference) {
      fmt::print("reference PPL = {:.4f} +/- {:.5f}; PPL(Q)/PPL(ref) = {:.6f}\n",
                 r->reference_perplexity.ppl, r->reference_perplexity.ppl_stderr, r->kld.ppl_ratio);
      fmt::print("KLD mean = {:.6f} +/- {:.6f}, median {:.6f}, p99 {:.6f}, max {:.6f}\n",
                 r->kld.mean, r->kld.stderr_mean, r->kld.median, r->kld.p99, r->kld.max);
      fmt::print("top-1 agreement = {:.4f}%\n", 100.0 * r->kld.top1_agreement);
    }
    fmt::print("{:.2f} s, {:.1f} tokens/s\n", r->seconds, tokens_per_s);
  }
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Perplexity (llama-perplexity protocol) and KL divergence vs a reference");
  auto o = std::make_shared<EvalCliOptions>();
  cmd->add_option("--model,-m", o->model, "Model path (.gguf, llama2.c .bin, HF folder)")
      ->required();
  o->acts.AddTo(cmd);
  cmd->add_flag("--exact", o->exact,
                "exact kernels: f32 activations into every product (default: 8-bit block "
                "activations with integer dots where a kernel has them, as llama.cpp)");
  cmd->add_option("--weights,-w", o->weights,
                  "Quantize the model's matrices to this format in memory first (round to nearest; "
                  "see `lowbit formats`)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: the model's own)");
  cmd->add_option("--text,-f", o->text, "Text file to evaluate on")->required();
  CLI::Option* ctx = cmd->add_option("--ctx,-c", o->ctx, "Tokens per chunk")
                         ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  CLI::Option* chunks =
      cmd->add_option("--chunks", o->chunks, "At most this many chunks (default: all)")
          ->check(CLI::PositiveNumber);
  CLI::Option* all = cmd->add_flag("--all-tokens", o->all_tokens,
                                   "Score every position of a chunk, not only the second half");
  CLI::Option* ref = cmd->add_option("--reference", o->reference,
                                     "Reference model for KL divergence (same tokenizer)");
  cmd->add_option("--save-logits", o->save_logits,
                  "Write this model's log-probabilities as a reference logits file");
  cmd->add_option("--save-top-k", o->save_top_k,
                  "With --save-logits: keep only the top k log-probs per token (0 = all, fp16)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--reference-logits", o->reference_logits,
                  "Reference logits file from an earlier --save-logits run")
      ->excludes(ref);
  cmd->add_flag("--json", o->json, "Print the results as JSON");
  cmd->add_flag("--quiet,-q", o->quiet, "No progress output on stderr");
  cmd->add_option("--threads,-t", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->callback([=] {
    o->ctx_given = ctx->count() > 0;
    o->chunks_given = chunks->count() > 0;
    o->all_tokens_given = all->count() > 0;
    *exit_code = RunEval(*o);
  });
}

}  // namespace lowbit::cli
