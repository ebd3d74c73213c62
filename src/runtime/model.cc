// LlamaConfig checks, model bookkeeping and the forward pass of LlamaSession.
#include "lowbit/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include "lowbit/format_registry.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit {

Status LlamaConfig::Validate() const {
  auto positive = [](const char* field, int64_t v) -> Status {
    if (v <= 0)
      return InvalidArgument(std::string("model config: ") + field + " = " + std::to_string(v) +
                             ", expected > 0");
    return Status::Ok();
  };
  LOWBIT_RETURN_IF_ERROR(positive("dim", dim));
  LOWBIT_RETURN_IF_ERROR(positive("hidden_dim", hidden_dim));
  LOWBIT_RETURN_IF_ERROR(positive("n_layers", n_layers));
  LOWBIT_RETURN_IF_ERROR(positive("n_heads", n_heads));
  LOWBIT_RETURN_IF_ERROR(positive("n_kv_heads", n_kv_heads));
  LOWBIT_RETURN_IF_ERROR(positive("head_dim", head_dim));
  LOWBIT_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  if (n_heads % n_kv_heads != 0) {
    return InvalidArgument("model config: n_heads = " + std::to_string(n_heads) +
                           " is not a multiple of n_kv_heads = " + std::to_string(n_kv_heads));
  }
  const int64_t rd = rope_dim > 0 ? rope_dim : head_dim;
  if (rd % 2 != 0 || rd > head_dim) {
    return InvalidArgument("model config: rope_dim = " + std::to_string(rd) +
                           ", expected even and <= head_dim = " + std::to_string(head_dim));
  }
  if (!(rope_theta > 0.0) || !std::isfinite(rope_theta)) {
    return InvalidArgument("model config: rope_theta = " + std::to_string(rope_theta) +
                           ", expected a finite value > 0");
  }
  if (!(rms_eps >= 0.0f) || !std::isfinite(rms_eps)) {
    return InvalidArgument("model config: rms_eps = " + std::to_string(rms_eps) +
                           ", expected a finite value >= 0");
  }
  if (rope_scaling.type != RopeScalingType::kNone && !(rope_scaling.factor > 0.0)) {
    return InvalidArgument("model config: rope scaling factor = " +
                           std::to_string(rope_scaling.factor) + ", expected > 0");
  }
  if (rope_scaling.type == RopeScalingType::kLlama3 &&
      !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
    return InvalidArgument(
        "model config: llama3 rope scaling needs high_freq_factor > low_freq_factor");
  }
  return Status::Ok();
}

std::string LlamaConfig::ToString() const {
  std::ostringstream os;
  os << architecture << ": dim " << dim << ", hidden " << hidden_dim << ", layers " << n_layers
     << ", heads " << n_heads << " (kv " << n_kv_heads << ", head_dim " << head_dim << ")"
     << ", vocab " << vocab_size << ", context " << context_length << ", rope theta " << rope_theta
     << (rope_layout == RopeLayout::kNeox ? " neox" : " adjacent-pairs")
     << (rope_scaling.type == RopeScalingType::kLinear   ? " linear-scaled"
         : rope_scaling.type == RopeScalingType::kLlama3 ? " llama3-scaled"
                                                         : "")
     << ", rms eps " << rms_eps << (tied_embeddings ? ", tied embeddings" : "")
     << (qkv_bias ? ", qkv bias" : "");
  return os.str();
}

std::string WeightView::format_name() const {
  if (is_f32()) return "f32";
  const std::string spec = format->spec();
  if (const PresetInfo* preset = FormatRegistry::Get().PresetForSpec(spec)) return preset->name;
  return spec;
}

int64_t WeightView::n_bytes() const {
  return is_f32() ? 4 * rows * cols : format->PackedBytes(rows, cols);
}

namespace {
template <class Fn>
void ForEachMatrix(const LlamaModel& m, Fn fn) {
  fn(m.token_embedding);
  for (const LayerWeights& l : m.layers) {
    for (const WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) fn(*w);
  }
  if (!m.config.tied_embeddings) fn(m.output);
}
}  // namespace

int64_t LlamaModel::WeightBytes() const {
  int64_t total = 0;
  ForEachMatrix(*this, [&](const WeightView& w) { total += w.n_bytes(); });
  return total;
}

int64_t LlamaModel::WeightCount() const {
  int64_t total = 0;
  ForEachMatrix(*this, [&](const WeightView& w) { total += w.rows * w.cols; });
  return total;
}

std::string LlamaModel::FormatSummary() const {
  std::map<std::string, int> counts;
  ForEachMatrix(*this, [&](const WeightView& w) { ++counts[w.format_name()]; });
  std::string out;
  for (const auto& [name, count] : counts) {
    if (!out.empty()) out += ", ";
    out += name + " x" + std::to_string(count);
  }
  return out;
}

namespace {

// Quantize-then-dequantize of `rows` independent rows of `cols` floats in place: the simulated
// quantization of activations (WxAy). Rows are split across the pool; each row's result depends
// only on its own values, so the thread count never changes a bit.
void QdqRows(const Format* format, float* x, int64_t rows, int64_t cols, ThreadPool& pool) {
  if (format == nullptr) return;
  pool.ParallelFor(rows, [&](int64_t r, int) {
    thread_local std::vector<uint8_t> packed;
    packed.resize(static_cast<size_t>(format->PackedBytes(1, cols)));
    float* row = x + r * cols;
    const Status st = format->Quantize(row, 1, cols, packed.data());
    LOWBIT_CHECK(st.ok());  // formats are checked with ValidateActivationFormat at session start
    format->DequantizeRows(packed.data(), 1, cols, 0, 1, row);
  });
}

}  // namespace

void UseExactKernels(LlamaModel& model) {
  PrepareModelForIsa(model, kernels::ActiveIsa(), kernels::ActPath::kF32);
}

Status ValidateActivationFormats(const ActivationQuantOptions& a) {
  for (const FormatPtr* f : {&a.linear_inputs, &a.attention, &a.kv_cache}) {
    if (*f && !(*f)->can_quantize()) {
      return InvalidArgument("activation format " + (*f)->spec() +
                             " is decode-only: it cannot quantize activations");
    }
  }
  return Status::Ok();
}

// Scratch for one Forward call; n = tokens in the call.
struct LlamaSession::Activations {
  std::vector<float> x;        // (n, dim) residual stream
  std::vector<float> xb;       // (n, dim) normed input / sublayer output
  std::vector<float> q;        // (n, n_heads * head_dim)
  std::vector<float> k;        // (n, n_kv_heads * head_dim)
  std::vector<float> v;        // (n, n_kv_heads * head_dim)
  std::vector<float> att;      // (n, n_heads * head_dim) attention output before wo
  std::vector<float> gate;     // (n, hidden_dim)
  std::vector<float> up;       // (n, hidden_dim)
  std::vector<float> cos_sin;  // (n, rope_dim / 2, 2)
};

LlamaSession::LlamaSession(const LlamaModel& model, const SessionOptions& options)
    : model_(model),
      pool_(std::make_unique<ThreadPool>(options.n_threads)),
      act_(std::make_unique<Activations>()),
      linear_input_observer_(options.linear_input_observer) {
  LOWBIT_CHECK(ValidateActivationFormats(model.activations).ok());
  const LlamaConfig& c = model.config;
  max_tokens_ =
      options.max_tokens > 0
          ? options.max_tokens
          : std::max<int64_t>(
                1, std::min<int64_t>(c.context_length > 0 ? c.context_length : 4096, 4096));
  const size_t cache = static_cast<size_t>(c.n_layers * max_tokens_ * c.n_kv_heads * c.head_dim);
  key_cache_.assign(cache, 0.0f);
  value_cache_.assign(cache, 0.0f);
  rope_freqs_ = RopeFrequencies(c, model.rope_freq_factors);
}

LlamaSession::~LlamaSession() = default;

Status LlamaSession::Forward(std::span<const int32_t> tokens, int64_t logits_from,
                             std::vector<float>* logits) {
  const LlamaConfig& c = model_.config;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return InvalidArgument("forward: no tokens");
  if (logits_from < 0 || logits_from > n) {
    return InvalidArgument("forward: logits_from = " + std::to_string(logits_from) +
                           " outside [0, " + std::to_string(n) + "]");
  }
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return InvalidArgument("forward: token id " + std::to_string(tokens[t]) + " at index " +
                             std::to_string(t) + " outside the vocabulary [0, " +
                             std::to_string(c.vocab_size) + ")");
    }
  }
  if (pos_ + n > max_tokens_) {
    return InvalidArgument("forward: " + std::to_string(pos_) + " cached + " + std::to_string(n) +
                           " new tokens exceed the context of " + std::to_string(max_tokens_));
  }

  const int64_t dim = c.dim;
  const int64_t hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd;
  const int64_t kv_dim = c.n_kv_heads * hd;
  const int64_t hidden = c.hidden_dim;
  const int64_t rope_dim = c.rope_dim > 0 ? c.rope_dim : hd;
  const int64_t heads_per_kv = c.n_heads / c.n_kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  ThreadPool& pool = *pool_;
  const Format* act_linear = model_.activations.linear_inputs.get();
  const Format* act_attention = model_.activations.attention.get();
  const Format* act_kv = model_.activations.kv_cache.get();
  // Quantizes the shared input of the linears `ws` (x: (n_tokens, cols)), then shows it to the
  // calibration observer once per linear.
  auto prepare_input = [&](int64_t layer, std::initializer_list<const WeightView*> ws, float* x,
                           int64_t n_tokens, int64_t cols) {
    QdqRows(act_linear, x, n_tokens, cols, pool);
    if (linear_input_observer_) {
      for (const WeightView* w : ws) linear_input_observer_(layer, *w, x, n_tokens);
    }
  };
  Activations& a = *act_;
  auto size = [](int64_t rows, int64_t cols) { return static_cast<size_t>(rows * cols); };
  a.x.resize(size(n, dim));
  a.xb.resize(size(n, dim));
  a.q.resize(size(n, q_dim));
  a.k.resize(size(n, kv_dim));
  a.v.resize(size(n, kv_dim));
  a.att.resize(size(n, q_dim));
  a.gate.resize(size(n, hidden));
  a.up.resize(size(n, hidden));
  a.cos_sin.resize(size(n, rope_dim));

  for (int64_t t = 0; t < n; ++t) ReadRow(model_.token_embedding, tokens[t], &a.x[size(t, dim)]);
  for (int64_t t = 0; t < n; ++t) RopeCosSin(rope_freqs_, pos_ + t, &a.cos_sin[size(t, rope_dim)]);

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = model_.layers[static_cast<size_t>(l)];
    // Attention block: x += wo . attention(rope(wq . norm(x)), rope(wk . norm(x)), wv . norm(x)).
    for (int64_t t = 0; t < n; ++t) {
      RmsNorm(&a.x[size(t, dim)], w.attn_norm.data(), dim, c.rms_eps, &a.xb[size(t, dim)]);
    }
    prepare_input(l, {&w.wq, &w.wk, &w.wv}, a.xb.data(), n, dim);
    Linear(w.wq, a.xb.data(), n, a.q.data(), pool);
    Linear(w.wk, a.xb.data(), n, a.k.data(), pool);
    Linear(w.wv, a.xb.data(), n, a.v.data(), pool);
    float* key_layer = &key_cache_[size(l * max_tokens_, kv_dim)];      // (max_tokens, kv_dim)
    float* value_layer = &value_cache_[size(l * max_tokens_, kv_dim)];  // (max_tokens, kv_dim)
    for (int64_t t = 0; t < n; ++t) {
      float* qt = &a.q[size(t, q_dim)];
      float* kt = &a.k[size(t, kv_dim)];
      float* vt = &a.v[size(t, kv_dim)];
      if (c.qkv_bias) {
        for (int64_t i = 0; i < q_dim; ++i) qt[i] += w.bq[size_t(i)];
        for (int64_t i = 0; i < kv_dim; ++i) kt[i] += w.bk[size_t(i)];
        for (int64_t i = 0; i < kv_dim; ++i) vt[i] += w.bv[size_t(i)];
      }
      const float* cs = &a.cos_sin[size(t, rope_dim)];
      ApplyRope(qt, c.n_heads, hd, rope_dim, c.rope_layout, cs);
      ApplyRope(kt, c.n_kv_heads, hd, rope_dim, c.rope_layout, cs);
    }
    // Cache quantization, then the attention operands: each head's q, k and v row (head_dim) is
    // one row of the activation format.
    QdqRows(act_kv, a.k.data(), n * c.n_kv_heads, hd, pool);
    QdqRows(act_kv, a.v.data(), n * c.n_kv_heads, hd, pool);
    QdqRows(act_attention, a.q.data(), n * c.n_heads, hd, pool);
    QdqRows(act_attention, a.k.data(), n * c.n_kv_heads, hd, pool);
    QdqRows(act_attention, a.v.data(), n * c.n_kv_heads, hd, pool);
    for (int64_t t = 0; t < n; ++t) {
      const float* kt = &a.k[size(t, kv_dim)];
      const float* vt = &a.v[size(t, kv_dim)];
      std::memcpy(key_layer + (pos_ + t) * kv_dim, kt, sizeof(float) * size_t(kv_dim));
      std::memcpy(value_layer + (pos_ + t) * kv_dim, vt, sizeof(float) * size_t(kv_dim));
    }
    // Causal mask: the query at position pos_ + t sees keys 0 .. pos_ + t.
    pool.ParallelFor(n * c.n_heads, [&](int64_t task, int) {
      const int64_t t = task / c.n_heads;
      const int64_t h = task % c.n_heads;
      const int64_t kvh = h / heads_per_kv;
      const int64_t n_keys = pos_ + t + 1;
      thread_local std::vector<float> scores;
      if (scores.size() < size_t(n_keys)) scores.resize(size_t(n_keys));
      AttendOneHead(&a.q[size(t, q_dim) + size_t(h * hd)], key_layer + kvh * hd,
                    value_layer + kvh * hd, kv_dim, n_keys, hd, scale, act_attention,
                    scores.data(), &a.att[size(t, q_dim) + size_t(h * hd)]);
    });
    prepare_input(l, {&w.wo}, a.att.data(), n, q_dim);
    Linear(w.wo, a.att.data(), n, a.xb.data(), pool);
    for (size_t i = 0; i < size(n, dim); ++i) a.x[i] += a.xb[i];

    // Feed-forward block: x += w_down . (silu(w_gate . norm(x)) * (w_up . norm(x))).
    for (int64_t t = 0; t < n; ++t) {
      RmsNorm(&a.x[size(t, dim)], w.ffn_norm.data(), dim, c.rms_eps, &a.xb[size(t, dim)]);
    }
    prepare_input(l, {&w.w_gate, &w.w_up}, a.xb.data(), n, dim);
    Linear(w.w_gate, a.xb.data(), n, a.gate.data(), pool);
    Linear(w.w_up, a.xb.data(), n, a.up.data(), pool);
    SwiGlu(a.gate.data(), a.up.data(), n * hidden, a.gate.data());
    prepare_input(l, {&w.w_down}, a.gate.data(), n, hidden);
    Linear(w.w_down, a.gate.data(), n, a.xb.data(), pool);
    for (size_t i = 0; i < size(n, dim); ++i) a.x[i] += a.xb[i];
  }
  pos_ += n;

  // Classifier only for the requested tokens: logits ((n - logits_from), vocab).
  const int64_t n_out = n - logits_from;
  logits->resize(size(n_out, c.vocab_size));
  if (n_out == 0) return Status::Ok();
  for (int64_t t = 0; t < n_out; ++t) {
    RmsNorm(&a.x[size(logits_from + t, dim)], model_.output_norm.data(), dim, c.rms_eps,
            &a.xb[size(t, dim)]);
  }
  prepare_input(-1, {&model_.output}, a.xb.data(), n_out, dim);
  Linear(model_.output, a.xb.data(), n_out, logits->data(), pool);
  return Status::Ok();
}

}  // namespace lowbit
