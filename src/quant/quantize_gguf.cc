// `lowbit quantize`: GGUF in, GGUF out, every matrix re-encoded by round-to-nearest
// (include/lowbit/quantize.h).
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/quantize.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

bool HasGgmlType(const Format& f) { return f.gguf_type().has_value() && *f.gguf_type() >= 0; }

bool WholeBlocks(const Format& f, int64_t cols) {
  const int64_t b = f.block_size();
  return b <= 1 || cols % b == 0;
}

// Presets with a ggml type that store exactly the same number of bytes per block as `f`: the
// candidates into which f's values might convert without change (OCP mxfp4 -> ggml MXFP4).
std::vector<FormatPtr> GgmlTwinCandidates(const Format& f) {
  std::vector<FormatPtr> out;
  if (f.block_size() <= 0) return out;
  for (const PresetInfo& preset : FormatRegistry::Get().presets()) {
    Result<FormatPtr> g = ParseFormat(preset.spec);
    if (!g.ok() || !HasGgmlType(**g) || !(*g)->can_quantize()) continue;
    if ((*g)->block_size() == f.block_size() && (*g)->block_bytes() == f.block_bytes()) {
      out.push_back(*g);
    }
  }
  return out;
}

// Quantizes rows [0, rows) of x into `out` with `format`, rows split across the pool for formats
// whose rows are independent (per-tensor formats run whole).
Status QuantizeRows(const Format& format, const float* x, int64_t rows, int64_t cols, uint8_t* out,
                    ThreadPool& pool) {
  if (format.block_size() < 0 || format.HeaderBytes(rows, cols) != 0) {
    return format.Quantize(x, rows, cols, out);
  }
  constexpr int64_t kRowsPerTask = 64;
  const int64_t row_bytes = format.RowBytes(cols);
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  std::vector<Status> status(static_cast<size_t>(tasks));
  pool.ParallelFor(tasks, [&](int64_t t, int) {
    const int64_t r0 = t * kRowsPerTask;
    const int64_t n = std::min(kRowsPerTask, rows - r0);
    status[static_cast<size_t>(t)] =
        format.Quantize(x + r0 * cols, n, cols, out + r0 * row_bytes);
  });
  for (const Status& st : status) LOWBIT_RETURN_IF_ERROR(st);
  return Status::Ok();
}

std::vector<float> Decode(const Format& format, const uint8_t* bytes, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  format.Dequantize(bytes, rows, cols, out.data());
  return out;
}

// Equal values: +0 and -0 count as equal (OCP MX keeps the sign of a value that rounds to zero,
// ggml writes +0; every product and sum is the same), NaN equals NaN.
bool SameValues(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  }
  return true;
}

std::string FormatName(const Format& f) {
  if (const PresetInfo* p = FormatRegistry::Get().PresetForSpec(f.spec())) return p->name;
  return f.spec();
}

bool IsLinearName(const std::string& name) { return name.rfind("blk.", 0) == 0; }

// Whether every target format can be stored with a llama.cpp type: decided from the specs alone,
// before any data is read, so the fallback of partial-block tensors is known up front.
bool IntendsLlamaCppFile(const GgufFile& in, const QuantRules& rules,
                         std::map<std::string, std::vector<FormatPtr>>& twins) {
  for (const GgufTensor& t : in.tensors()) {
    const FormatPtr f = t.dims.size() >= 2 ? rules.FormatFor(t.name) : nullptr;
    const Format& stored = f ? *f : *t.format;
    if (HasGgmlType(stored)) continue;
    if (f == nullptr) return false;  // kept in a lowbit type
    auto [it, inserted] = twins.try_emplace(f->spec());
    if (inserted) it->second = GgmlTwinCandidates(*f);
    if (it->second.empty()) return false;
  }
  return true;
}

// RMSE and SQNR of q against the source values x, into the tensor's and the total report.
void MeasureError(const std::vector<float>& x, const std::vector<float>& q, TensorQuantReport& r,
                  QuantizeReport& report) {
  double sq_err = 0.0, sq_sig = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
    sq_err += d * d;
    sq_sig += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  }
  r.rmse = std::sqrt(sq_err / static_cast<double>(x.size()));
  r.sqnr_db = sq_err == 0.0 ? std::numeric_limits<double>::infinity()
                            : 10.0 * std::log10(sq_sig / sq_err);
  report.total_sq_error += sq_err;
  report.total_sq_signal += sq_sig;
}

}  // namespace

double QuantizeReport::total_sqnr_db() const {
  if (total_sq_error == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(total_sq_signal / total_sq_error);
}

double ActivationBits(const FormatPtr& format, int64_t cols) {
  return format ? format->BitsPerWeight(1, cols) : 32.0;
}

double ModelArithmeticDensity(const LlamaModel& model, const FormatPtr& activation_format,
                              const MacCostModel& cost_model) {
  const MacOperand act = activation_format ? activation_format->mac_operand() : F32Operand();
  const double f32_cost = cost_model.Cost(F32Operand(), F32Operand());
  double macs = 0.0, cost = 0.0;
  for (const auto& [name, w] : GgufMatrixNames(model)) {
    if (!IsLinearName(name)) continue;
    const MacOperand wop = w->is_f32() ? F32Operand() : w->format->mac_operand();
    const double n = static_cast<double>(w->rows) * static_cast<double>(w->cols);
    macs += n;
    cost += n * cost_model.Cost(wop, act);
  }
  return macs > 0.0 ? macs * f32_cost / cost : 1.0;
}

Result<QuantizeReport> QuantizeGgufFile(const std::string& in_path, const std::string& out_path,
                                        const QuantizeOptions& options) {
  const Clock::time_point start = Clock::now();
  LOWBIT_RETURN_IF_ERROR(ValidateActivationFormats(options.activations));
  LOWBIT_ASSIGN_OR_RETURN(GgufFile in, GgufFile::Open(in_path));
  ThreadPool pool(std::max(1, options.n_threads));
  std::map<std::string, std::vector<FormatPtr>> twins;
  const bool llama_cpp_intent = IntendsLlamaCppFile(in, options.rules, twins);

  GgufWriter writer;
  for (const GgufKeyValue& kv : in.metadata()) {
    // Stale lowbit keys of a re-quantized file and the file type (now mixed) are not carried.
    if (kv.key.rfind("lowbit.", 0) == 0 || kv.key == "general.file_type") continue;
    writer.SetValue(kv.key, kv.value);
  }
  writer.SetString("general.quantized_by", "lowbit");
  if (options.rules.default_format) {
    writer.SetString("lowbit.quantize.weights", options.rules.default_format->spec());
  }
  std::string rule_text;
  for (const QuantRule& r : options.rules.rules) {
    rule_text += r.pattern + " = " + (r.format ? r.format->spec() : "keep") + "\n";
  }
  if (!rule_text.empty()) writer.SetString("lowbit.quantize.rules", rule_text);
  const ActivationQuantOptions& acts = options.activations;
  if (acts.linear_inputs) writer.SetString(kActLinearInputsKey, acts.linear_inputs->spec());
  if (acts.attention) writer.SetString(kActAttentionKey, acts.attention->spec());
  if (acts.kv_cache) writer.SetString(kActKvCacheKey, acts.kv_cache->spec());

  // Matrices a calibrated method already produced, by GGUF name.
  std::map<std::string, const WeightView*> prequantized;
  if (options.prequantized != nullptr) {
    for (const auto& [name, w] : GgufMatrixNames(*options.prequantized)) {
      const GgufTensor* t = in.FindTensor(name);
      if (t != nullptr && !w->is_f32() && w->data != t->data) prequantized[name] = w;
    }
  }
  // Norm gains a calibrated method tuned (AQLM block or global fine-tuning), by GGUF name; written as f32
  // where the input stores f32 gains, so the file keeps the gains its codebooks were tuned for.
  std::map<std::string, const std::vector<float>*> tuned_norms;
  if (options.prequantized != nullptr) {
    const auto& layers = options.prequantized->layers;
    for (size_t l = 0; l < layers.size(); ++l) {
      const std::string blk = "blk." + std::to_string(l) + ".";
      tuned_norms[blk + "attn_norm.weight"] = &layers[l].attn_norm;
      tuned_norms[blk + "ffn_norm.weight"] = &layers[l].ffn_norm;
    }
    tuned_norms["output_norm.weight"] = &options.prequantized->output_norm;  // global fine-tuning
  }

  QuantizeReport report;
  bool compatible = true;
  const int64_t count = static_cast<int64_t>(in.tensors().size());
  double sum_linear_cost = 0.0, sum_linear_macs = 0.0;
  const MacOperand act_op = acts.linear_inputs ? acts.linear_inputs->mac_operand() : F32Operand();
  const double f32_cost = options.cost_model.Cost(F32Operand(), F32Operand());
  int64_t max_linear_cols = 0;
  for (int64_t index = 0; index < count; ++index) {
    const GgufTensor& t = in.tensors()[static_cast<size_t>(index)];
    const Clock::time_point tensor_start = Clock::now();
    TensorQuantReport r;
    r.name = t.name;
    r.source_format = FormatName(*t.format);
    r.rows = t.rows;
    r.cols = t.cols;
    r.linear = IsLinearName(t.name) && t.dims.size() >= 2;
    report.source_bytes += static_cast<double>(t.n_bytes);

    FormatPtr target = t.dims.size() >= 2 ? options.rules.FormatFor(t.name) : nullptr;
    FormatPtr stored = t.format;
    std::vector<uint8_t> bytes;
    if (auto it = prequantized.find(t.name); it != prequantized.end()) {
      const WeightView& w = *it->second;
      bytes.assign(w.data, w.data + w.n_bytes());
      stored = w.format;
      const std::vector<float> x = Decode(*t.format, t.data, t.rows, t.cols);
      MeasureError(x, Decode(*stored, bytes.data(), t.rows, t.cols), r, report);
      r.note = "calibrated";
    } else if (auto norm = tuned_norms.find(t.name);
               target == nullptr && norm != tuned_norms.end() && t.dims.size() == 1 &&
               FormatName(*t.format) == "f32" && static_cast<int64_t>(norm->second->size()) == t.cols &&
               std::memcmp(norm->second->data(), t.data, t.n_bytes) != 0) {
      bytes.resize(t.n_bytes);
      std::memcpy(bytes.data(), norm->second->data(), t.n_bytes);
      r.note = "calibrated (tuned norm)";
    } else if (target == nullptr) {
      bytes.assign(t.data, t.data + t.n_bytes);  // kept exactly as stored
      r.note = "kept";
    } else {
      if (!target->can_quantize()) {
        return Unimplemented(in_path + ": tensor '" + t.name + "': format " + target->spec() +
                             " is decode-only: it cannot be a target");
      }
      const std::vector<float> x = Decode(*t.format, t.data, t.rows, t.cols);
      if (llama_cpp_intent && !WholeBlocks(*target, t.cols)) {
        // ggml stores whole blocks only: fall back as llama-quantize does.
        float max_abs = 0.0f;
        for (float v : x) max_abs = std::max(max_abs, std::fabs(v));
        const std::string fallback = max_abs < 65504.0f ? "f16" : "f32";
        r.note = "fallback: rows of " + std::to_string(t.cols) + " are not whole blocks of " +
                 FormatName(*target) + " (block " + std::to_string(target->block_size()) +
                 "); stored as " + fallback + " for llama.cpp";
        LOWBIT_ASSIGN_OR_RETURN(target, ParseFormat(fallback));
      }
      bytes.resize(static_cast<size_t>(target->PackedBytes(t.rows, t.cols)));
      Status st = QuantizeRows(*target, x.data(), t.rows, t.cols, bytes.data(), pool);
      if (!st.ok()) {
        return Status(st.code(), in_path + ": tensor '" + t.name + "': " + st.message());
      }
      std::vector<float> q = Decode(*target, bytes.data(), t.rows, t.cols);
      stored = target;
      if (llama_cpp_intent && !HasGgmlType(*target)) {
        // Store in a llama.cpp type that holds exactly the same values, if one does.
        bool converted = false;
        for (const FormatPtr& twin : twins[target->spec()]) {
          std::vector<uint8_t> twin_bytes(static_cast<size_t>(twin->PackedBytes(t.rows, t.cols)));
          if (!QuantizeRows(*twin, q.data(), t.rows, t.cols, twin_bytes.data(), pool).ok()) continue;
          if (SameValues(Decode(*twin, twin_bytes.data(), t.rows, t.cols), q)) {
            r.note = "stored as " + FormatName(*twin) + ", llama.cpp's layout of the same values";
            bytes = std::move(twin_bytes);
            stored = twin;
            converted = true;
            break;
          }
        }
        if (!converted) r.note = "no llama.cpp type holds these values: lowbit type";
      }
      MeasureError(x, q, r, report);
    }
    r.format = FormatName(*stored);
    r.n_bytes = static_cast<int64_t>(bytes.size());
    const bool ggml_typed = HasGgmlType(*stored) && WholeBlocks(*stored, t.cols);
    r.ggml_type = ggml_typed ? GgmlTypeName(static_cast<uint32_t>(*stored->gguf_type())) : "lowbit";
    compatible = compatible && ggml_typed;
    report.model_bytes += r.n_bytes;
    report.model_elements += t.rows * t.cols;
    if (r.linear) {
      report.linear_bytes += r.n_bytes;
      report.linear_elements += t.rows * t.cols;
      const double macs = static_cast<double>(t.rows) * static_cast<double>(t.cols);
      sum_linear_macs += macs;
      sum_linear_cost += macs * options.cost_model.Cost(stored->mac_operand(), act_op);
      max_linear_cols = std::max(max_linear_cols, t.cols);
    }
    LOWBIT_RETURN_IF_ERROR(writer.AddTensor(t.name, t.dims, stored, bytes));
    r.seconds = Seconds(tensor_start);
    if (options.on_tensor) options.on_tensor(r, index, count);
    report.tensors.push_back(std::move(r));
  }
  report.llama_cpp_compatible = compatible;
  report.arithmetic_density = sum_linear_macs > 0.0 ? sum_linear_macs * f32_cost / sum_linear_cost
                                                    : 1.0;
  // Activation bits on a row of the model's width (the input of q/k/v/gate/up).
  const GgufTensor* embd = in.FindTensor("token_embd.weight");
  report.activation_bits =
      ActivationBits(acts.linear_inputs, embd != nullptr ? embd->cols : max_linear_cols);
  LOWBIT_RETURN_IF_ERROR(writer.WriteAtomic(out_path));
  report.seconds = Seconds(start);
  return report;
}

Result<LlamaModel> QuantizeModelWithRules(const LlamaModel& model, const QuantRules& rules) {
  return QuantizeModelWeights(
      model, [&](const WeightView&, const std::string& name) { return rules.FormatFor(name); });
}

}  // namespace lowbit
