// `lowbit bench [--json] [--out FILE] [--formats LIST] [--isa LIST] [--threads LIST]
//  [--shapes LIST] [--n LIST] [--min-time S] [--passes P] [--quick] [--no-e2e] [--model PATH]
//  [--e2e-formats LIST] [--e2e-tokens N] [--e2e-threads N] [--e2e-repeats N]`:
// in one run, this machine's read bandwidth (DRAM at each thread count, L3-resident), the matvec
// speed of every format at every instruction-set level against it and against f32, and the
// end-to-end decode speed of SmolLM2-135M per format. Table on stdout (or JSON with --json),
// progress on stderr. What is measured and how: docs/bench.md; the code: src/eval/bench.h.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "commands.h"
#include "eval/bench.h"
#include "io/file_io.h"
#include "lowbit/format_registry.h"
#include "lowbit/tokenizer.h"
#include "runtime/thread_pool.h"

namespace lowbit::cli {
namespace {

using kernels::Isa;
using Clock = std::chrono::steady_clock;

// The formats the kernel families target (issue 7), one or two presets per family and bit width.
constexpr const char* kDefaultFormats =
    "q8_0,q4_0,q4_1,q5_0,q4_k,q6_k,int8_g32,int4_g32,int4_g32_asym,int4_g128,nf4,mxint8,"
    "mxfp8_e4m3,mxfp8_e5m2,mxfp6_e3m2,mxfp6_e2m3,mxfp4,bfp8,bfp6,bfp4,bfp8_b32,bfp6_b32,bfp4_b32,"
    "bm8,bl8,fp6_e3m2_split";
constexpr const char* kDefaultShapes = "4096x4096,4096x11008,11008x4096";
constexpr const char* kQuickShapes = "256x1024,512x2048";
constexpr const char* kDefaultE2eFormats = "f32,q4_0,mxfp4,bfp6,q8_0";
constexpr const char* kSmolLm2File = "SmolLM2-135M-Instruct.Q4_1.gguf";
// The matvec shape of the bandwidth target, and the target itself.
constexpr int64_t kTargetRows = 4096;
constexpr int64_t kTargetCols = 11008;
constexpr double kTargetFraction = 0.85;
constexpr double kTargetMinBits = 4.0;
constexpr double kE2eTargetFactor = 0.8;
constexpr int64_t kPromptTokens = 16;
constexpr const char* kPromptText =
    "The history of the printing press begins in the fifteenth century, when a goldsmith in Mainz "
    "combined movable metal type with an oil-based ink and a screw press.";

struct BenchCliOptions {
  bool json = false;
  std::string out;
  std::string formats = kDefaultFormats;
  std::string isa;  // default: every level up to the active one
  std::string threads = "1,2";
  std::string shapes;  // default: kDefaultShapes, or kQuickShapes with --quick
  std::string n_list;  // default: 1,4,16, or 1,4 with --quick
  double min_time_s = -1.0;
  int passes = 1;  // the matvec section this many times, best time per case kept
  bool quick = false;
  bool resident = false;  // one copy of each matrix, reused: the kernels' compute rate
  bool no_e2e = false;
  std::string model;
  std::string e2e_formats = kDefaultE2eFormats;
  int64_t e2e_tokens = -1;  // default 128, 16 with --quick
  int e2e_threads = 0;      // default: the largest --threads value
  int e2e_repeats = 0;      // default 3, 1 with --quick
};

struct BenchFormat {
  std::string name;        // preset name, or the spec; "f32" for the baseline
  FormatPtr format;        // null for f32 and for "stored"
  bool as_stored = false;  // --e2e-formats "stored": the model's matrices as the file stores them
  double bits_per_weight(int64_t rows, int64_t cols) const {
    return format ? format->BitsPerWeight(rows, cols) : 32.0;
  }
};

struct Shape {
  int64_t rows;
  int64_t cols;
};

struct MatvecRow {
  std::string format;
  std::string spec;
  double bits_per_weight;
  bool random_bytes;
  Shape shape;
  Isa isa;
  int threads;
  int64_t n;
  bench::MatvecResult r;
  double fraction_of_dram = 0.0;
  double speedup_vs_f32 = 0.0;
};

struct E2eRow {
  std::string format;
  bench::DecodeResult r;
  double speedup_vs_f32 = 0.0;
  double bytes_ratio = 0.0;  // bytes(f32) / bytes(format)
  double target = 0.0;       // kE2eTargetFactor * bytes_ratio
};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

std::string PrettyName(const FormatPtr& f) {
  const std::string spec = f->spec();
  const PresetInfo* preset = FormatRegistry::Get().PresetForSpec(spec);
  return preset ? preset->name : spec;
}

// Format names and specs; a family spec's own "key=value" parameters contain commas, so an item
// with '=' and no ':' continues the previous item. "f32" is the baseline, always measured.
Result<std::vector<BenchFormat>> ParseFormats(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  for (std::string& item : SplitList(text)) {
    if (item.find('=') != std::string::npos && item.find(':') == std::string::npos &&
        !items.empty()) {
      items.back() += "," + item;
    } else {
      items.push_back(std::move(item));
    }
  }
  if (items.size() == 1 && items[0] == "all") {
    items.clear();
    for (const PresetInfo& p : FormatRegistry::Get().presets()) items.push_back(p.name);
  }
  if (items.empty()) return InvalidArgument(option + ": no format given");
  std::vector<BenchFormat> out;
  std::set<std::string> seen;
  for (const std::string& item : items) {
    Result<FormatPtr> f = ParseFormat(item);
    if (!f.ok()) return InvalidArgument(option + ": '" + item + "': " + f.status().message());
    const std::string spec = (*f)->spec();
    if (!seen.insert(spec).second) continue;
    if (spec == "float:type=f32") {
      out.push_back({"f32", nullptr});
    } else {
      out.push_back({PrettyName(*f), *f});
    }
  }
  return out;
}

Result<std::vector<int64_t>> ParseInts(const std::string& text, const std::string& option,
                                       int64_t min_value, int64_t max_value) {
  std::vector<int64_t> out;
  for (const std::string& item : SplitList(text)) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < min_value || v > max_value) {
      return InvalidArgument(fmt::format("{}: '{}' is not an integer in [{}, {}]", option, item,
                                         min_value, max_value));
    }
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (out.empty()) return InvalidArgument(option + ": empty list");
  return out;
}

Result<std::vector<Shape>> ParseShapes(const std::string& text) {
  std::vector<Shape> out;
  for (const std::string& item : SplitList(text)) {
    const size_t x = item.find('x');
    if (x == std::string::npos) {
      return InvalidArgument("--shapes: '" + item + "' is not ROWSxCOLS (e.g. 4096x11008)");
    }
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                            ParseInts(item.substr(0, x), "--shapes rows", 1, 1 << 20));
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> cols,
                            ParseInts(item.substr(x + 1), "--shapes cols", 1, 1 << 20));
    if (rows.size() != 1 || cols.size() != 1) {
      return InvalidArgument("--shapes: '" + item + "' is not ROWSxCOLS");
    }
    out.push_back({rows[0], cols[0]});
  }
  if (out.empty()) return InvalidArgument("--shapes: empty list");
  return out;
}

Result<std::vector<Isa>> ParseIsas(const std::string& text) {
  const Isa max = kernels::MaxSupportedIsa();
  std::vector<Isa> out;
  if (text.empty()) {
    for (int i = 0; i <= static_cast<int>(kernels::ActiveIsa()); ++i) {
      out.push_back(static_cast<Isa>(i));
    }
    return out;
  }
  for (const std::string& item : SplitList(text)) {
    bool found = false;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (item != kernels::IsaName(isa)) continue;
      found = true;
      if (isa > max) {
        return InvalidArgument(fmt::format("--isa: {} is not supported by this CPU (highest: {})",
                                           item, kernels::IsaName(max)));
      }
      if (std::find(out.begin(), out.end(), isa) == out.end()) out.push_back(isa);
    }
    if (!found) return InvalidArgument("--isa: '" + item + "' is not one of scalar, avx2, avx512");
  }
  if (out.empty()) return InvalidArgument("--isa: empty list");
  return out;
}

// SmolLM2 where scripts/fetch_models.sh puts it: .cache/models/ under the working directory or
// under any folder above the lowbit binary (a build tree inside the checkout).
std::string DefaultModelPath() {
  namespace fs = std::filesystem;
  const fs::path relative = fs::path(".cache") / "models" / kSmolLm2File;
  std::error_code ec;
  if (fs::exists(relative, ec)) return relative.string();
  fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (int up = 0; !ec && up < 6 && !dir.empty(); ++up) {
    if (fs::exists(dir / relative, ec)) return (dir / relative).string();
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return "";
}

std::string Mib(int64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string Duration(double s) {
  if (s >= 90) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.0f} s", s);
}

class BenchRun {
 public:
  explicit BenchRun(BenchCliOptions o) : o_(std::move(o)) {}
  int Run();

 private:
  Status Parse();
  void MeasureBandwidth();
  void ReprobeDram();
  Status MeasureMatvec();
  Status MeasureE2e();
  nlohmann::json ToJson() const;
  void PrintTable() const;
  void PrintTargetSummary() const;
  void PrintE2e() const;
  void Progress(const std::string& line) const {
    fmt::print(stderr, "[bench {:6.1f} s] {}\n",
               std::chrono::duration<double>(Clock::now() - start_).count(), line);
    std::fflush(stderr);
  }
  double DramGbps(int threads) const { return dram_.at(threads).gbps; }

  BenchCliOptions o_;
  Clock::time_point start_ = Clock::now();
  std::vector<BenchFormat> formats_;  // f32 first
  std::vector<Isa> isas_;
  std::vector<int64_t> threads_;
  std::vector<Shape> shapes_;
  std::vector<int64_t> ns_;
  std::vector<BenchFormat> e2e_formats_;
  bench::TimingOptions timing_;
  int64_t l3_bytes_ = 0;
  bool l3_from_system_ = true;
  std::string cpu_;
  int nt_ = 1;                                  // largest thread count
  std::map<int, bench::BandwidthResult> dram_;  // by thread count: the better of the two probes
  std::map<int, double> dram_first_gbps_, dram_second_gbps_;  // probes before / after the matvecs
  bench::BandwidthResult l3_1t_, l3_nt_;
  std::vector<MatvecRow> matvec_;
  std::string model_path_;
  std::string e2e_skipped_;  // reason, when e2e did not run
  std::vector<E2eRow> e2e_;
};

Status BenchRun::Parse() {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<BenchFormat> listed, ParseFormats(o_.formats, "--formats"));
  formats_.push_back({"f32", nullptr});
  for (BenchFormat& f : listed) {
    if (f.format) formats_.push_back(std::move(f));
  }
  LOWBIT_ASSIGN_OR_RETURN(isas_, ParseIsas(o_.isa));
  LOWBIT_ASSIGN_OR_RETURN(threads_, ParseInts(o_.threads, "--threads", 1, 1024));
  LOWBIT_ASSIGN_OR_RETURN(
      shapes_,
      ParseShapes(o_.shapes.empty() ? (o_.quick ? kQuickShapes : kDefaultShapes) : o_.shapes));
  LOWBIT_ASSIGN_OR_RETURN(
      ns_,
      ParseInts(o_.n_list.empty() ? (o_.quick ? "1,4" : "1,4,16") : o_.n_list, "--n", 1, 4096));
  {
    // "stored" (the model's own packed matrices, e.g. an AQLM file) is not a format spec.
    std::string listed_e2e;
    bool stored = false;
    for (const std::string& item : SplitList(o_.e2e_formats)) {
      if (item == "stored") {
        stored = true;
      } else {
        listed_e2e += (listed_e2e.empty() ? "" : ",") + item;
      }
    }
    if (!listed_e2e.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(e2e_formats_, ParseFormats(listed_e2e, "--e2e-formats"));
    }
    if (stored) e2e_formats_.push_back({"stored", nullptr, true});
  }
  for (const BenchFormat& f : e2e_formats_) {
    if (f.format && !f.format->can_quantize()) {
      return InvalidArgument("--e2e-formats: " + f.name +
                             " is decode-only: a model cannot be quantized into it");
    }
  }
  if (o_.min_time_s < 0) o_.min_time_s = o_.quick ? 0.02 : 0.3;
  if (o_.e2e_tokens < 0) o_.e2e_tokens = o_.quick ? 16 : 128;
  if (o_.e2e_repeats <= 0) o_.e2e_repeats = o_.quick ? 1 : 3;
  nt_ = static_cast<int>(*std::max_element(threads_.begin(), threads_.end()));
  if (o_.e2e_threads <= 0) o_.e2e_threads = nt_;
  timing_.min_time_s = o_.min_time_s;
  timing_.min_samples = o_.quick ? 3 : 5;
  if (!o_.no_e2e) {
    if (o_.model.empty()) {
      model_path_ = DefaultModelPath();
      if (model_path_.empty()) {
        e2e_skipped_ = std::string("model not found: run scripts/fetch_models.sh (it puts ") +
                       kSmolLm2File + " in .cache/models/) or pass --model";
      }
    } else {
      std::error_code ec;
      if (!std::filesystem::exists(o_.model, ec))
        return NotFound("--model: " + o_.model + ": no such file");
      model_path_ = o_.model;
    }
  } else {
    e2e_skipped_ = "--no-e2e";
  }
  return Status::Ok();
}

void BenchRun::MeasureBandwidth() {
  // DRAM: a buffer of max(4x the L3, 1 GiB) (128 MiB with --quick) so no pass finds the previous
  // one's data in cache even where the reported L3 understates the real one (see MatvecBench);
  // >= 1 GiB read in all (256 MiB with --quick). L3: half the L3, read over and over.
  const int64_t traffic = o_.quick ? int64_t{256} << 20 : int64_t{1} << 30;
  bench::TimingOptions t = timing_;
  ReprobeDram();
  l3_1t_ = bench::MeasureReadBandwidth(l3_bytes_ / 2, 1, traffic, t);
  l3_nt_ = bench::MeasureReadBandwidth(l3_bytes_ / 2, nt_, traffic, t);
  Progress(fmt::format("L3-resident read bandwidth: {:.1f} GB/s (1 thread), {:.1f} GB/s ({})",
                       l3_1t_.gbps, l3_nt_.gbps, nt_));
}

// The DRAM probe at every thread count. Memory bandwidth on a shared host drifts by tens of
// percent within minutes (this machine: 42 vs 67 GB/s at 2 threads in two runs minutes apart), so
// the bench probes before and after the matvec section and divides by the better of the two: a
// quiet spell during either counts against the kernels, never for them.
void BenchRun::ReprobeDram() {
  const int64_t dram_buffer =
      std::max<int64_t>(4 * l3_bytes_, o_.quick ? int64_t{128} << 20 : int64_t{1} << 30);
  const int64_t traffic = o_.quick ? int64_t{256} << 20 : int64_t{1} << 30;
  const bool second = !dram_.empty();
  std::set<int> counts(threads_.begin(), threads_.end());
  counts.insert(1);
  for (int n : counts) {
    bench::BandwidthResult b = bench::MeasureReadBandwidth(dram_buffer, n, traffic, timing_);
    Progress(fmt::format("DRAM read bandwidth, {} thread(s){}: {:.1f} GB/s", n,
                         second ? " (second probe)" : "", b.gbps));
    (second ? dram_second_gbps_ : dram_first_gbps_)[n] = b.gbps;
    if (!second || b.gbps > dram_[n].gbps) dram_[n] = b;
  }
  if (second) {
    for (MatvecRow& row : matvec_) row.fraction_of_dram = row.r.weight_gbps / DramGbps(row.threads);
  }
}

Status BenchRun::MeasureMatvec() {
  std::map<int, std::unique_ptr<ThreadPool>> pools;
  for (int64_t t : threads_)
    pools[static_cast<int>(t)] = std::make_unique<ThreadPool>(static_cast<int>(t));
  const int64_t per_pass = static_cast<int64_t>(shapes_.size() * formats_.size() * isas_.size() *
                                                threads_.size() * ns_.size());
  const int64_t total = per_pass * o_.passes;
  int64_t done = 0;
  const auto t0 = Clock::now();
  // Passes spread each case's samples over minutes: the host's bandwidth drifts (docs/bench.md),
  // and a case keeps its best pass, as the DRAM probe keeps its best probe.
  for (int pass = 0; pass < o_.passes; ++pass) {
    if (pass > 0) ReprobeDram();
    int64_t index = 0;
    for (size_t s = 0; s < shapes_.size(); ++s) {
      const Shape shape = shapes_[s];
      for (const BenchFormat& f : formats_) {
        Result<bench::BenchMatrix> matrix =
            bench::MakeBenchMatrix(f.format, shape.rows, shape.cols, 1000 + s);
        if (!matrix.ok()) {
          return Status(matrix.status().code(), f.name + ": " + matrix.status().message());
        }
        for (Isa isa : isas_) {
          bench::MatvecBench mb(*matrix, isa, l3_bytes_, o_.resident);
          for (int64_t threads : threads_) {
            for (int64_t n : ns_) {
              bench::MatvecCase c{n, static_cast<int>(threads), isa};
              MatvecRow row{f.name,
                            f.format ? f.format->spec() : "f32",
                            f.bits_per_weight(shape.rows, shape.cols),
                            matrix->random_bytes,
                            shape,
                            isa,
                            static_cast<int>(threads),
                            n,
                            mb.Run(c, *pools[c.threads], timing_)};
              if (pass == 0) {
                matvec_.push_back(std::move(row));
              } else if (row.r.timing.best_s <
                         matvec_[static_cast<size_t>(index)].r.timing.best_s) {
                matvec_[static_cast<size_t>(index)] = std::move(row);
              }
              ++index;
              ++done;
            }
          }
        }
        const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
        const MatvecRow& last = matvec_[static_cast<size_t>(index - 1)];
        Progress(fmt::format(
            "matvec {}x{} {:<16} done ({}/{}{}; best so far: {} {} t={} n={} {:.1f} GB/s, "
            "kernel {}), matvec ETA {}",
            shape.rows, shape.cols, f.name, done, total,
            o_.passes > 1 ? fmt::format(", pass {}/{}", pass + 1, o_.passes) : std::string(),
            last.format, kernels::IsaName(last.isa), last.threads, last.n, last.r.weight_gbps,
            last.r.kernel, Duration(elapsed / done * (total - done))));
      }
    }
  }
  // The speed-up baseline: the f32 case (best pass) at the same shape, level, threads and n.
  std::map<std::tuple<int64_t, int64_t, Isa, int, int64_t>, double> f32_s;
  for (const MatvecRow& row : matvec_) {
    if (row.spec == "f32") {
      f32_s[std::make_tuple(row.shape.rows, row.shape.cols, row.isa, row.threads, row.n)] =
          row.r.timing.best_s;
    }
  }
  for (MatvecRow& row : matvec_) {
    row.fraction_of_dram = row.r.weight_gbps / DramGbps(row.threads);
    row.speedup_vs_f32 =
        f32_s.at(std::make_tuple(row.shape.rows, row.shape.cols, row.isa, row.threads, row.n)) /
        row.r.timing.best_s;
  }
  return Status::Ok();
}

Status BenchRun::MeasureE2e() {
  if (!e2e_skipped_.empty()) {
    if (e2e_skipped_ != "--no-e2e") Progress("end-to-end decode skipped: " + e2e_skipped_);
    return Status::Ok();
  }
  Progress("loading " + model_path_);
  LOWBIT_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModelWithTokenizer(model_path_));
  std::vector<int32_t> prompt =
      loaded.tokenizer->Encode(kPromptText, loaded.tokenizer->add_bos_default());
  if (static_cast<int64_t>(prompt.size()) < kPromptTokens) {
    return InvalidArgument(fmt::format("{}: the benchmark prompt encodes to only {} tokens (< {})",
                                       model_path_, prompt.size(), kPromptTokens));
  }
  prompt.resize(kPromptTokens);
  bench::DecodeOptions d;
  d.generated_tokens = o_.e2e_tokens;
  d.threads = o_.e2e_threads;
  d.repeats = 1;  // rounds below: each round decodes once per format
  // f32 first: every other format is compared with it.
  std::vector<BenchFormat> order = {{"f32", nullptr}};
  for (const BenchFormat& f : e2e_formats_) {
    if (f.format || f.as_stored) order.push_back(f);
  }
  // Every model is built first, then the repeats run as rounds over all formats, so a format and
  // the f32 baseline are timed minutes apart at most: on a shared machine whose speed drifts, the
  // ratio then compares like with like. Each format keeps its best round.
  std::vector<LlamaModel> models;
  models.reserve(order.size());
  for (const BenchFormat& f : order) {
    if (f.as_stored) {
      Progress("decode stored: the model's matrices as the file stores them");
      models.push_back(loaded.model);
    } else {
      Progress("decode " + f.name + ": quantizing the model's matrices");
      LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, bench::ModelWithWeightsIn(
                                                loaded.model, f.format ? f.format->spec() : "f32"));
      models.push_back(std::move(m));
    }
  }
  std::vector<bench::DecodeResult> best(order.size());
  for (int round = 0; round < o_.e2e_repeats; ++round) {
    for (size_t i = 0; i < order.size(); ++i) {
      LOWBIT_ASSIGN_OR_RETURN(bench::DecodeResult r, bench::MeasureDecode(models[i], prompt, d));
      if (round == 0 || r.generate_s < best[i].generate_s) best[i].generate_s = r.generate_s;
      if (round == 0 || r.prompt_s < best[i].prompt_s) best[i].prompt_s = r.prompt_s;
      best[i].weight_bytes = r.weight_bytes;
      best[i].tokens_per_s = static_cast<double>(d.generated_tokens) / best[i].generate_s;
    }
    Progress(fmt::format("decode round {}/{}: {}", round + 1, o_.e2e_repeats, [&] {
      std::string line;
      for (size_t i = 0; i < order.size(); ++i) {
        line += fmt::format("{}{} {:.1f}", i ? ", " : "", order[i].name, best[i].tokens_per_s);
      }
      return line + " tokens/s (best so far)";
    }()));
  }
  for (size_t i = 0; i < order.size(); ++i) {
    const bench::DecodeResult& r = best[i];
    E2eRow row{order[i].name, r};
    if (!e2e_.empty()) {
      const E2eRow& base = e2e_.front();
      row.speedup_vs_f32 = r.tokens_per_s / base.r.tokens_per_s;
      row.bytes_ratio =
          static_cast<double>(base.r.weight_bytes) / static_cast<double>(r.weight_bytes);
    } else {
      row.speedup_vs_f32 = 1.0;
      row.bytes_ratio = 1.0;
    }
    row.target = kE2eTargetFactor * row.bytes_ratio;
    e2e_.push_back(std::move(row));
  }
  return Status::Ok();
}

// {"1": gbps, "2": gbps}.
nlohmann::json ByThreads(const std::map<int, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [t, v] : m) j[std::to_string(t)] = v;
  return j;
}

nlohmann::json BenchRun::ToJson() const {
  nlohmann::json j;
  j["schema"] = "lowbit.bench.v1";
  j["machine"] = {{"cpu", cpu_},
                  {"logical_cpus", static_cast<int64_t>(::sysconf(_SC_NPROCESSORS_ONLN))},
                  {"l3_bytes", l3_bytes_},
                  {"l3_bytes_from_system", l3_from_system_},
                  {"max_isa", kernels::IsaName(kernels::MaxSupportedIsa())},
                  {"active_isa", kernels::IsaName(kernels::ActiveIsa())}};
  j["settings"] = {{"quick", o_.quick},
                   {"resident", o_.resident},
                   {"min_time_s", o_.min_time_s},
                   {"passes", o_.passes},
                   {"statistic", "best sample (minimum time); median reported alongside"},
                   {"threads", threads_},
                   {"n", ns_}};
  nlohmann::json by_threads = nlohmann::json::object();
  for (const auto& [t, b] : dram_) by_threads[std::to_string(t)] = b.gbps;
  j["bandwidth"] = {{"dram_gbps_1t", dram_.at(1).gbps},
                    {"dram_gbps_nt", dram_.at(nt_).gbps},
                    {"nt", nt_},
                    {"dram_gbps_by_threads", by_threads},
                    {"dram_median_gbps_1t", dram_.at(1).median_gbps},
                    {"dram_probe_gbps_before", ByThreads(dram_first_gbps_)},
                    {"dram_probe_gbps_after", ByThreads(dram_second_gbps_)},
                    {"dram_median_gbps_nt", dram_.at(nt_).median_gbps},
                    {"dram_buffer_bytes", dram_.at(1).buffer_bytes},
                    {"dram_bytes_read_1t", dram_.at(1).bytes_read},
                    {"l3_gbps", l3_1t_.gbps},
                    {"l3_gbps_nt", l3_nt_.gbps},
                    {"l3_buffer_bytes", l3_1t_.buffer_bytes}};
  nlohmann::json rows = nlohmann::json::array();
  for (const MatvecRow& m : matvec_) {
    rows.push_back({{"format", m.format},
                    {"spec", m.spec},
                    {"bits_per_weight", m.bits_per_weight},
                    {"isa", kernels::IsaName(m.isa)},
                    {"kernel", m.r.kernel},
                    {"threads", m.threads},
                    {"rows", m.shape.rows},
                    {"cols", m.shape.cols},
                    {"n", m.n},
                    {"weight_bytes", m.r.weight_bytes},
                    {"copies", m.r.copies},
                    {"random_bytes", m.random_bytes},
                    {"seconds", m.r.timing.best_s},
                    {"seconds_median", m.r.timing.median_s},
                    {"samples", m.r.timing.samples},
                    {"weight_gbps", m.r.weight_gbps},
                    {"gflops", m.r.gflops},
                    {"fraction_of_dram", m.fraction_of_dram},
                    {"speedup_vs_f32", m.speedup_vs_f32}});
  }
  j["matvec"] = rows;
  if (e2e_skipped_.empty()) {
    nlohmann::json results = nlohmann::json::array();
    for (const E2eRow& e : e2e_) {
      results.push_back({{"format", e.format},
                         {"weight_bytes", e.r.weight_bytes},
                         {"prompt_s", e.r.prompt_s},
                         {"generate_s", e.r.generate_s},
                         {"tokens_per_s", e.r.tokens_per_s},
                         {"speedup_vs_f32", e.speedup_vs_f32},
                         {"bytes_ratio_vs_f32", e.bytes_ratio},
                         {"target_speedup", e.target},
                         {"meets_target", e.format == "f32" || e.speedup_vs_f32 >= e.target}});
    }
    j["e2e"] = {{"model", model_path_},
                {"prompt_tokens", kPromptTokens},
                {"generated_tokens", o_.e2e_tokens},
                {"threads", o_.e2e_threads},
                {"repeats", o_.e2e_repeats},
                {"isa", kernels::IsaName(kernels::ActiveIsa())},
                {"results", results}};
  } else {
    j["e2e"] = nullptr;
    j["e2e_skipped"] = e2e_skipped_;
  }
  return j;
}

void BenchRun::PrintTable() const {
  fmt::print("lowbit bench: {}, {} logical CPUs, L3 {}{}, highest ISA {} (active {})\n", cpu_,
             ::sysconf(_SC_NPROCESSORS_ONLN), Mib(l3_bytes_), l3_from_system_ ? "" : " (guessed)",
             kernels::IsaName(kernels::MaxSupportedIsa()), kernels::IsaName(kernels::ActiveIsa()));
  fmt::print("Timing: best of >= {} samples and >= {:.2f} s per case (median in --json)\n\n",
             timing_.min_samples, o_.min_time_s);
  fmt::print("Read bandwidth (streaming 64-bit sum):\n");
  for (const auto& [t, b] : dram_) {
    fmt::print("  DRAM {:>2} thread(s): {:7.1f} GB/s  (median {:.1f}; {} buffer, {} read)", t,
               b.gbps, b.median_gbps, Mib(b.buffer_bytes), Mib(b.bytes_read));
    if (dram_second_gbps_.count(t) != 0) {
      fmt::print("; probes before/after the matvecs {:.1f} / {:.1f}, the better one used",
                 dram_first_gbps_.at(t), dram_second_gbps_.at(t));
    }
    fmt::print("\n");
  }
  fmt::print("  L3    1 thread(s): {:7.1f} GB/s  ({} buffer)\n", l3_1t_.gbps,
             Mib(l3_1t_.buffer_bytes));
  fmt::print("  L3   {:>2} thread(s): {:7.1f} GB/s\n\n", nt_, l3_nt_.gbps);

  fmt::print(
      "Matvec y = x . W^T, W rows x cols, n tokens. GB/s = weight bytes / time; %DRAM = GB/s / "
      "DRAM GB/s at the same thread count; x f32 = f32 time / time, same level\n");
  for (const Shape& shape : shapes_) {
    for (int64_t t : threads_) {
      for (int64_t n : ns_) {
        fmt::print("\n{}x{}, {} thread(s), n = {}\n", shape.rows, shape.cols, t, n);
        fmt::print("  {:<16} {:>6} {:<7} {:<22} {:>8} {:>6} {:>8} {:>7}\n", "format", "bits", "isa",
                   "kernel", "GB/s", "%DRAM", "GFLOP/s", "x f32");
        for (const MatvecRow& m : matvec_) {
          if (m.shape.rows != shape.rows || m.shape.cols != shape.cols || m.threads != t ||
              m.n != n)
            continue;
          fmt::print("  {:<16} {:>6.2f} {:<7} {:<22} {:>8.2f} {:>5.0f}% {:>8.2f} {:>7.2f}{}\n",
                     m.format, m.bits_per_weight, kernels::IsaName(m.isa), m.r.kernel,
                     m.r.weight_gbps, 100.0 * m.fraction_of_dram, m.r.gflops, m.speedup_vs_f32,
                     m.random_bytes ? "  (random bytes)" : "");
        }
      }
    }
  }

  if (o_.resident) {
    fmt::print(
        "\n--resident: one copy of each matrix was reused, so GB/s is the kernels' compute rate "
        "where the matrix fits the caches; %DRAM is for comparison only and no target applies\n");
  } else {
    PrintTargetSummary();
  }
  PrintE2e();
}

void BenchRun::PrintTargetSummary() const {
  // The bandwidth target: n = 1 on 4096x11008 (else the largest shape measured).
  Shape target = shapes_.front();
  bool exact = false;
  for (const Shape& s : shapes_) {
    if (s.rows == kTargetRows && s.cols == kTargetCols) {
      target = s;
      exact = true;
    }
    if (!exact && s.rows * s.cols > target.rows * target.cols) target = s;
  }
  const int64_t n_target = std::find(ns_.begin(), ns_.end(), 1) != ns_.end() ? 1 : ns_.front();
  fmt::print(
      "\n%DRAM at n = {} on {}x{}{}, per format, level and thread count. Target: formats of >= "
      "{:.0f} bits/weight reach >= {:.0f}% with {} threads\n",
      n_target, target.rows, target.cols, exact ? "" : " (not the issue's 4096x11008)",
      kTargetMinBits, 100 * kTargetFraction, nt_);
  fmt::print("  {:<16} {:>6}", "format", "bits");
  for (Isa isa : isas_)
    for (int64_t t : threads_)
      fmt::print(" {:>10}", fmt::format("{}/{}t", kernels::IsaName(isa), t));
  fmt::print("  target\n");
  for (const BenchFormat& f : formats_) {
    const double bits = f.bits_per_weight(target.rows, target.cols);
    fmt::print("  {:<16} {:>6.2f}", f.name, bits);
    bool all_met = true;
    for (Isa isa : isas_) {
      for (int64_t t : threads_) {
        for (const MatvecRow& m : matvec_) {
          if (m.format == f.name && m.isa == isa && m.threads == t && m.n == n_target &&
              m.shape.rows == target.rows && m.shape.cols == target.cols) {
            fmt::print(" {:>9.0f}%", 100 * m.fraction_of_dram);
            if (t == nt_ && isa == isas_.back() && m.fraction_of_dram < kTargetFraction)
              all_met = false;
          }
        }
      }
    }
    const char* verdict = bits < kTargetMinBits ? "n/a (< 4 bits)" : all_met ? "met" : "NOT met";
    fmt::print("  {} ({})\n", verdict, kernels::IsaName(isas_.back()));
  }
}

void BenchRun::PrintE2e() const {
  fmt::print("\nEnd-to-end decode");
  if (!e2e_skipped_.empty()) {
    fmt::print(": skipped ({})\n", e2e_skipped_);
    return;
  }
  fmt::print(", {}: prompt {} tokens, {} generated (greedy), {} thread(s), ISA {}, best of {}\n",
             std::filesystem::path(model_path_).filename().string(), kPromptTokens, o_.e2e_tokens,
             o_.e2e_threads, kernels::IsaName(kernels::ActiveIsa()), o_.e2e_repeats);
  fmt::print("  {:<16} {:>12} {:>10} {:>9} {:>13} {:>12}  {}\n", "format", "weights", "tokens/s",
             "x f32", "bytes f32/fmt", "target 0.8x", "met");
  for (const E2eRow& e : e2e_) {
    fmt::print("  {:<16} {:>12} {:>10.1f} {:>9.2f} {:>13.2f} {:>12.2f}  {}\n", e.format,
               Mib(e.r.weight_bytes), e.r.tokens_per_s, e.speedup_vs_f32, e.bytes_ratio, e.target,
               e.format == "f32"              ? "-"
               : e.speedup_vs_f32 >= e.target ? "yes"
                                              : "NO");
  }
}

int BenchRun::Run() {
  if (Status st = Parse(); !st.ok()) return ReportError(st);
  l3_bytes_ = bench::L3CacheBytes(&l3_from_system_);
  cpu_ = bench::CpuModelName();
  // Rough estimate: every case takes about its minimum time plus set-up; e2e ~ 30 s per format.
  const double n_cases = static_cast<double>(shapes_.size() * formats_.size() * isas_.size() *
                                             threads_.size() * ns_.size());
  double estimate =
      n_cases * (o_.min_time_s * 1.3 + 0.02) + 2.0 * static_cast<double>(threads_.size() + 3);
  if (e2e_skipped_.empty())
    estimate += (o_.quick ? 10.0 : 40.0) * static_cast<double>(e2e_formats_.size() + 1);
  Progress(
      fmt::format("{} matvec cases ({} shapes x {} formats incl. f32 x {} levels x {} thread "
                  "counts x {} n); estimated time ~{}",
                  n_cases, shapes_.size(), formats_.size(), isas_.size(), threads_.size(),
                  ns_.size(), Duration(estimate)));
  MeasureBandwidth();
  if (Status st = MeasureMatvec(); !st.ok()) return ReportError(st);
  if (!matvec_.empty()) ReprobeDram();
  if (Status st = MeasureE2e(); !st.ok()) return ReportError(st);
  const nlohmann::json j = ToJson();
  if (!o_.out.empty()) {
    const std::string text = j.dump(2) + "\n";
    Result<std::unique_ptr<io::AtomicFileWriter>> w = io::AtomicFileWriter::Create(o_.out);
    if (!w.ok()) return ReportError(w.status());
    if (Status st = (*w)->Write(text.data(), text.size()); !st.ok()) return ReportError(st);
    if (Status st = (*w)->Commit(); !st.ok()) return ReportError(st);
    Progress("wrote " + o_.out);
  }
  if (o_.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    PrintTable();
  }
  return kExitOk;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure read bandwidth, matvec speed per format and level, and decode tokens/s");
  auto o = std::make_shared<BenchCliOptions>();
  cmd->add_flag("--json", o->json, "Print the results as JSON instead of tables");
  cmd->add_option("--out,-o", o->out, "Also write the JSON to this file (atomically)");
  cmd->add_option("--formats", o->formats,
                  "Comma-separated presets or specs to measure besides f32, or 'all' (default: the "
                  "kernel families' formats)")
      ->default_str(kDefaultFormats);
  cmd->add_option(
      "--isa", o->isa,
      "Levels to measure: scalar,avx2,avx512 (default: every level up to the active one)");
  cmd->add_option("--threads,-t", o->threads, "Comma-separated thread counts")->default_str("1,2");
  cmd->add_option("--shapes", o->shapes, "Comma-separated ROWSxCOLS matrices")
      ->default_str(kDefaultShapes);
  cmd->add_option("--n", o->n_list, "Comma-separated token counts")->default_str("1,4,16");
  cmd->add_option("--passes", o->passes,
                  "Run the matvec section this many times (a DRAM probe between passes) and keep "
                  "each case's best pass (default 1)")
      ->check(CLI::Range(1, 20));
  cmd->add_option("--min-time", o->min_time_s,
                  "Seconds of samples per case (default 0.3; 0.02 quick)")
      ->check(CLI::Range(0.0, 60.0));
  cmd->add_flag("--quick", o->quick,
                "Small shapes, n = 1,4, short timings: a smoke run in seconds (numbers not "
                "representative: the small matrices stay in cache)");
  cmd->add_flag("--resident", o->resident,
                "Reuse one copy of each matrix instead of streaming copies from DRAM: with a "
                "shape that fits the caches (e.g. 512x2048) GB/s is then the kernel's compute "
                "rate, the most it could stream; %DRAM and the target verdicts do not apply");
  cmd->add_flag("--no-e2e", o->no_e2e, "Skip the end-to-end decode benchmark");
  cmd->add_option(
      "--model,-m", o->model,
      "Model for end-to-end decode (default: .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf "
      "from scripts/fetch_models.sh; skipped when absent)");
  cmd->add_option("--e2e-formats", o->e2e_formats,
                  "Formats for end-to-end decode (f32 always; 'stored': the model's matrices as "
                  "stored, e.g. AQLM)")
      ->default_str(kDefaultE2eFormats);
  cmd->add_option("--e2e-tokens", o->e2e_tokens, "Generated tokens (default 128; 16 quick)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--e2e-threads", o->e2e_threads,
                  "Threads for decode (default: largest --threads)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--e2e-repeats", o->e2e_repeats,
                  "Decode rounds (each decodes every format once, f32 first), best counts (default "
                  "3; 1 quick)")
      ->check(CLI::Range(1, 100));
  cmd->callback([=] { *exit_code = BenchRun(*o).Run(); });
}

}  // namespace lowbit::cli
