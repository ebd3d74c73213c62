// `lowbit sweep [--model M] [--text FILE] [--formats LIST] [--out DIR]`: round-to-nearest of the
// linear layers at every point of a grid of formats (weight-only and WxAy), each scored against
// the unquantized model; writes sweep.md / .csv / .json / .svg. See docs/sweep.md.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "io/file_io.h"
#include "lowbit/eval.h"
#include "lowbit/format_registry.h"
#include "lowbit/quantize.h"
#include "lowbit/sweep.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct SweepCliOptions {
  std::string model = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text = "../shared/data/text/wiki.test.raw";
  std::string formats;
  std::string out = "sweep-out";
  int64_t ctx = 512;
  int64_t chunks = 3;
  bool attention = false;
  bool quiet = false;
  int threads = 2;
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string Duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return s >= 60 ? fmt::format("{}m{:02}s", s / 60, s % 60) : fmt::format("{}s", s);
}

std::string Name(const FormatPtr& f) {
  if (!f) return "";
  const PresetInfo* p = FormatRegistry::Get().PresetForSpec(f->spec());
  return p ? p->name : f->spec();
}

Status WriteAtomic(const std::string& path, const std::string& text) {
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<io::AtomicFileWriter> w,
                          io::AtomicFileWriter::Create(path));
  LOWBIT_RETURN_IF_ERROR(w->Write(text.data(), text.size()));
  return w->Commit();
}

bool IsLinear(const std::string& gguf_name) { return gguf_name.rfind("blk.", 0) == 0; }

// Progress bar with ETA on stderr (one line per point when stderr is not a terminal).
void ShowProgress(size_t done, size_t total, double elapsed, const std::string& what) {
  const double eta = done > 0 ? elapsed / done * (total - done) : 0.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / std::max<size_t>(total, 1));
  const bool tty = ::isatty(2) == 1;
  fmt::print(stderr, "{}[{}{}] {}/{} {} elapsed, ETA {}  {}{}", tty ? "\r" : "",
             std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total,
             Duration(elapsed), Duration(eta), what, tty ? "\033[K" : "\n");
  if (tty && done == total) fmt::print(stderr, "\n");
}

int RunSweep(const SweepCliOptions& o) {
  std::vector<SweepPoint> points;
  if (o.formats.empty()) {
    points = DefaultSweepGrid();
  } else {
    Result<std::vector<SweepPoint>> parsed = ParseSweepPoints(o.formats);
    if (!parsed.ok()) return ReportError(parsed.status());
    points = std::move(*parsed);
  }
  Result<LoadedModel> loaded = LoadModelWithTokenizer(o.model, "");
  if (!loaded.ok()) return ReportError(loaded.status());
  // Exact kernels throughout: a point measures its formats, not the fast path's 8-bit activations.
  UseExactKernels(loaded->model);
  const LlamaModel& model = loaded->model;
  std::ifstream in(o.text, std::ios::binary);
  if (!in) return ReportError(NotFound(o.text + ": cannot open the text file"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Tokenizer& tokenizer = *loaded->tokenizer;
  const std::vector<int32_t> tokens = tokenizer.Encode(text, tokenizer.add_bos_default());
  if (static_cast<int64_t>(tokens.size()) < o.ctx) {
    return ReportError(InvalidArgument(o.text + ": " + std::to_string(tokens.size()) +
                                       " tokens, fewer than one chunk of --ctx " +
                                       std::to_string(o.ctx)));
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return ReportError(IoError(o.out + ": cannot create the folder: " + ec.message()));

  SessionOptions session_options;
  session_options.max_tokens = o.ctx;
  session_options.n_threads = o.threads;
  EvalOptions eval_options;
  eval_options.ctx = o.ctx;
  eval_options.max_chunks = o.chunks;
  eval_options.replace_bos = tokenizer.add_bos_default();
  eval_options.bos = tokenizer.bos();

  // The unquantized model once: its log-probabilities go to a reference file every point reads.
  const Clock::time_point start = Clock::now();
  const std::string reference_path = o.out + "/reference.lblogits";
  SweepContext context;
  context.model = o.model;
  context.text = o.text;
  context.ctx = o.ctx;
  context.reference_note = "the model as stored (" + model.FormatSummary() +
                           "), f32 activations";
  {
    if (!o.quiet) fmt::print(stderr, "reference: {} ({})\n", o.model, model.FormatSummary());
    LlamaSession session(model, session_options);
    EvalOptions ref_options = eval_options;
    ref_options.save_logits_path = reference_path;
    Result<EvalResult> ref = Evaluate(session, tokens, ref_options);
    if (!ref.ok()) return ReportError(ref.status());
    context.chunks = ref->n_chunks;
    context.scored_tokens = ref->perplexity.count;
    context.reference_ppl = ref->perplexity.ppl;
  }
  Result<std::unique_ptr<LogitsFileReader>> reference = LogitsFileReader::Open(reference_path);
  if (!reference.ok()) return ReportError(reference.status());

  std::vector<SweepResult> results;
  const double setup_seconds = Seconds(start);
  const Clock::time_point sweep_start = Clock::now();
  for (size_t i = 0; i < points.size(); ++i) {
    const SweepPoint& p = points[i];
    SweepResult r;
    r.point = p;
    r.weights_name = Name(p.weights);
    r.acts_name = Name(p.acts);
    const std::string what = fmt::format("{} {} {}{}", p.family, p.label, r.weights_name,
                                         p.acts ? "/" + r.acts_name : "");
    if (!o.quiet) ShowProgress(i, points.size(), Seconds(sweep_start), what);
    const Clock::time_point q_start = Clock::now();
    Result<LlamaModel> q = QuantizeModelWeights(
        model, [&](const WeightView&, const std::string& name) {
          return IsLinear(name) ? p.weights : FormatPtr();
        });
    if (!q.ok()) return ReportError(q.status());
    UseExactKernels(*q);
    q->activations.linear_inputs = p.acts;
    if (o.attention) q->activations.attention = p.acts;
    r.quantize_seconds = Seconds(q_start);
    int64_t linear_bytes = 0, linear_count = 0;
    for (const auto& [name, w] : GgufMatrixNames(*q)) {
      if (!IsLinear(name)) continue;
      linear_bytes += w->n_bytes();
      linear_count += w->rows * w->cols;
    }
    r.linear_bits = 8.0 * linear_bytes / linear_count;
    r.model_bits = 8.0 * q->WeightBytes() / q->WeightCount();
    r.memory_density = 32.0 / r.linear_bits;
    r.act_bits = ActivationBits(p.acts, model.config.dim);
    r.act_memory_density = 32.0 / r.act_bits;
    r.arithmetic_density = ModelArithmeticDensity(*q, p.acts);

    LlamaSession session(*q, session_options);
    Result<EvalResult> e = Evaluate(session, tokens, eval_options, nullptr, reference->get());
    if (!e.ok()) return ReportError(e.status());
    r.eval_seconds = e->seconds;
    r.ppl = e->perplexity.ppl;
    r.ppl_stderr = e->perplexity.ppl_stderr;
    r.kld = e->kld.mean;
    r.kld_stderr = e->kld.stderr_mean;
    r.top1 = e->kld.top1_agreement;
    results.push_back(std::move(r));
  }
  if (!o.quiet) ShowProgress(points.size(), points.size(), Seconds(sweep_start), "done");
  MarkParetoFrontier(results);
  reference->reset();
  std::filesystem::remove(reference_path, ec);

  const std::string md = SweepMarkdown(context, results);
  for (const auto& [file, body] :
       {std::pair<std::string, std::string>{"sweep.md", md},
        {"sweep.csv", SweepCsv(results)},
        {"sweep.json", SweepJson(context, results)},
        {"sweep.svg", SweepSvg(context, results)}}) {
    if (Status st = WriteAtomic(o.out + "/" + file, body); !st.ok()) return ReportError(st);
  }
  fmt::print("{}\n", md);
  fmt::print("wrote {0}/sweep.md, {0}/sweep.csv, {0}/sweep.json, {0}/sweep.svg ({1} points, "
             "reference {2}, total {3})\n",
             o.out, results.size(), Duration(setup_seconds), Duration(Seconds(start)));
  return kExitOk;
}

}  // namespace

void AddSweepCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<SweepCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "Accuracy vs bits over a grid of formats (weight-only and WxAy), round-to-nearest, each point "
      "scored (PPL, KLD, top-1) against the unquantized model; writes md/csv/json/svg to --out");
  cmd->add_option("-m,--model", o->model, "model (default: SmolLM2-135M from scripts/fetch_models.sh)")
      ->capture_default_str();
  cmd->add_option("-f,--text", o->text, "evaluation text")->capture_default_str();
  cmd->add_option("--formats", o->formats,
                  "points instead of the default grid: 'W' or 'W/A' items (presets or specs) "
                  "separated by ';' or spaces, e.g. 'q4_0;bfp6/bfp6;mxfp4/mxint8'");
  cmd->add_option("-o,--out", o->out, "output folder")->capture_default_str();
  cmd->add_option("-c,--ctx", o->ctx, "tokens per chunk")->capture_default_str()
      ->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  cmd->add_option("--chunks", o->chunks, "chunks scored per point (-1: all)")->capture_default_str();
  cmd->add_flag("--attn", o->attention,
                "WxAy points also quantize both operands of the two attention matmuls");
  cmd->add_option("-t,--threads", o->threads, "threads")->check(CLI::Range(1, 256));
  cmd->add_flag("-q,--quiet", o->quiet, "no progress");
  cmd->callback([o, exit_code] { *exit_code = RunSweep(*o); });
}

}  // namespace lowbit::cli
