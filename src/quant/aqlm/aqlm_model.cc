// QuantizeModelAqlm: calibration, per-block Hessians, per-matrix training, checkpoints
// (the procedure is documented in include/lowbit/aqlm.h).
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/additive.h"
#include "io/file_io.h"
#include "kernels/dense.h"
#include "lowbit/aqlm.h"
#include "lowbit/format_registry.h"
#include "quant/aqlm/aqlm_matrix.h"
#include "quant/aqlm/block_backward.h"
#include "quant/aqlm/block_finetune.h"
#include "quant/aqlm/block_forward.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

constexpr char kCheckpointMagic[8] = {'L', 'B', 'A', 'Q', 'L', 'M', 'C', '1'};

struct Storage {
  std::shared_ptr<const void> source;
  std::vector<std::vector<uint8_t>> buffers;
};

// FNV-1a over everything that determines the trained bytes, so a checkpoint of another run is
// never picked up.
class Fingerprint {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
  }
  template <class T>
  void AddValue(const T& v) { Add(&v, sizeof(v)); }
  void AddString(const std::string& s) { Add(s.data(), s.size()); AddValue(s.size()); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

// The double copies of a Hessian's inputs, kept for the whole run: fresh buffers of up to 800 MB
// per Hessian (65,536 tokens x 1,536 columns) cost page faults and zeroing on every call.
struct HessianScratch {
  std::vector<double> xd, xt;  // (n, cols) and its transpose (cols, n)
};

// h (cols, cols) = X^T X over the n rows of x, in double: every element the same token-order fma
// chain whatever the thread count or ISA (kernels/dense.h). Only the upper triangle is computed;
// Symmetrize mirrors it. Tasks are blocks of output columns, largest first: block [c0, c1) needs
// rows [0, c1) (its part of the triangle, plus the few elements below the diagonal inside the
// block, which Symmetrize overwrites), and one task packs each column panel of X once, so the
// panels are copied once per Hessian rather than once per few rows.
void AccumulateH(const float* x, int64_t n, int64_t cols, std::vector<double>& h, HessianScratch& scratch,
                 ThreadPool& pool) {
  const auto at = [](int64_t a, int64_t b) { return static_cast<size_t>(a * b); };
  std::vector<double>&xd = scratch.xd, &xt = scratch.xt;
  xd.resize(at(n, cols));
  xt.resize(xd.size());
  for (size_t i = 0; i < xd.size(); ++i) xd[i] = x[i];
  aqlm::TransposeMatrix(xd.data(), n, cols, xt.data(), pool);  // tiled: n is tens of thousands of tokens
  h.assign(at(cols, cols), 0.0);
  constexpr int64_t kColBlock = 96;  // a multiple of every level's tile width (8 to 32 doubles)
  const int64_t n_blocks = (cols + kColBlock - 1) / kColBlock;
  pool.ParallelFor(n_blocks, [&](int64_t task, int) {
    const int64_t c0 = (n_blocks - 1 - task) * kColBlock, c1 = std::min(cols, c0 + kColBlock);
    kernels::DenseArgs<double> args{xt.data(), xd.data() + c0, h.data() + c0, n, c1 - c0};
    args.lda = n;
    args.ldb = cols;
    args.ldy = cols;
    kernels::MultiplyRows<double>(args, 0, c1);
  });
}

void Symmetrize(std::vector<double>& h, int64_t cols) {
  for (int64_t a = 0; a < cols; ++a)
    for (int64_t b = 0; b < a; ++b) h[static_cast<size_t>(a * cols + b)] = h[static_cast<size_t>(b * cols + a)];
}

std::string CheckpointPath(const std::string& dir, int64_t layer) {
  return dir + "/aqlm_layer_" + std::to_string(layer) + ".bin";
}

// Layout: magic | uint64 fingerprint | uint64 count | count x (uint64 n_bytes | bytes). The
// entries are the seven packed tensors (wq .. w_down), then with fine_tune the attn_norm and
// ffn_norm gains as little-endian f32 (the fingerprint tells the two kinds apart).
Status WriteCheckpoint(const std::string& path, uint64_t fingerprint,
                       const std::vector<const std::vector<uint8_t>*>& tensors) {
  LOWBIT_ASSIGN_OR_RETURN(auto writer, io::AtomicFileWriter::Create(path));
  LOWBIT_RETURN_IF_ERROR(writer->Write(kCheckpointMagic, 8));
  LOWBIT_RETURN_IF_ERROR(writer->Write(&fingerprint, 8));
  const uint64_t count = tensors.size();
  LOWBIT_RETURN_IF_ERROR(writer->Write(&count, 8));
  for (const auto* t : tensors) {
    const uint64_t n = t->size();
    LOWBIT_RETURN_IF_ERROR(writer->Write(&n, 8));
    LOWBIT_RETURN_IF_ERROR(writer->Write(t->data(), n));
  }
  return writer->Commit();
}

// The tensors of a checkpoint whose fingerprint and sizes match; empty when there is none.
std::vector<uint8_t> FloatBytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<float> BytesToFloats(const std::vector<uint8_t>& b) {
  std::vector<float> out(b.size() / sizeof(float));
  std::memcpy(out.data(), b.data(), out.size() * sizeof(float));
  return out;
}

std::vector<std::vector<uint8_t>> ReadCheckpoint(const std::string& path, uint64_t fingerprint,
                                                 const std::vector<int64_t>& sizes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  char magic[8];
  uint64_t fp = 0, count = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&fp), 8);
  in.read(reinterpret_cast<char*>(&count), 8);
  if (!in || std::memcmp(magic, kCheckpointMagic, 8) != 0 || fp != fingerprint ||
      count != sizes.size()) {
    return {};
  }
  std::vector<std::vector<uint8_t>> out;
  for (int64_t size : sizes) {
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    if (!in || n != static_cast<uint64_t>(size)) return {};
    out.emplace_back(n);
    in.read(reinterpret_cast<char*>(out.back().data()), static_cast<std::streamsize>(n));
    if (!in) return {};
  }
  return out;
}

}  // namespace

Result<std::vector<std::vector<int32_t>>> SampleCalibration(const LlamaModel& model,
                                                            const AqlmOptions& o,
                                                            const AqlmProgressFn& progress) {
  if (o.n_sequences <= 0 || o.seq_len < 2) {
    return InvalidArgument("aqlm calibration: n_sequences = " + std::to_string(o.n_sequences) +
                           ", seq_len = " + std::to_string(o.seq_len) + ", expected >= 1 and >= 2");
  }
  if (o.bos < 0 || o.bos >= model.config.vocab_size) {
    return InvalidArgument("aqlm calibration: bos = " + std::to_string(o.bos) + " outside the vocabulary");
  }
  SessionOptions so;
  so.max_tokens = o.seq_len;
  so.n_threads = o.n_threads;
  LlamaSession session(model, so);
  std::vector<std::vector<int32_t>> out;
  std::vector<float> logits;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < o.n_sequences; ++s) {
    SamplerOptions sampler_options;
    sampler_options.temperature = 1.0f;
    sampler_options.top_k = 0;
    sampler_options.top_p = 1.0f;
    sampler_options.seed = o.seed * 1000003ull + static_cast<uint64_t>(s);
    Sampler sampler(sampler_options);
    session.Reset();
    std::vector<int32_t> seq = {o.bos};
    while (static_cast<int64_t>(seq.size()) < o.seq_len) {
      const int32_t last = seq.back();
      LOWBIT_RETURN_IF_ERROR(session.Forward(std::span<const int32_t>(&last, 1), 0, &logits));
      seq.push_back(sampler.Sample(logits));
    }
    out.push_back(std::move(seq));
    if (progress) {
      AqlmProgress p;
      p.calibration_done = s + 1;
      p.calibration_total = o.n_sequences;
      p.elapsed_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      p.eta_seconds = p.elapsed_seconds / double(s + 1) * double(o.n_sequences - s - 1);
      progress(p);
    }
  }
  return out;
}

Result<LlamaModel> QuantizeModelAqlm(const LlamaModel& model, const AqlmOptions& o,
                                     const AqlmProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  LOWBIT_ASSIGN_OR_RETURN(FormatPtr format, ParseFormat(o.scheme));
  const auto* aqlm_format = dynamic_cast<const AqlmFormat*>(format.get());
  if (aqlm_format == nullptr) {
    return InvalidArgument("aqlm: scheme '" + o.scheme + "' is not an aqlm format (e.g. aqlm_2x8g8)");
  }
  const LlamaConfig& c = model.config;
  std::vector<std::vector<int32_t>> calib = o.calibration;
  if (calib.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(calib, SampleCalibration(model, o, progress));
  }
  const int64_t n_seq = static_cast<int64_t>(calib.size());
  const int64_t seq_len = static_cast<int64_t>(calib[0].size());
  for (const auto& s : calib) {
    if (static_cast<int64_t>(s.size()) != seq_len || seq_len < 1) {
      return InvalidArgument("aqlm: calibration sequences must all have the same length >= 1");
    }
    for (int32_t t : s) {
      if (t < 0 || t >= c.vocab_size) {
        return InvalidArgument("aqlm: calibration token " + std::to_string(t) + " outside the vocabulary");
      }
    }
  }

  if (o.fine_tune && n_seq < 2) {
    return InvalidArgument("aqlm: fine_tune needs >= 2 calibration sequences (training + validation), got " +
                           std::to_string(n_seq));
  }
  if (o.fine_tune && o.fine_tune_steps < 1) {
    return InvalidArgument("aqlm: fine_tune_steps = " + std::to_string(o.fine_tune_steps) + ", expected >= 1");
  }
  aqlm::FineTuneOptions fto;
  fto.steps = o.fine_tune_steps;
  fto.lr = o.fine_tune_lr;
  fto.val_fraction = o.fine_tune_val_fraction;
  fto.batch_sequences = o.fine_tune_batch;
  fto.tune_norms = o.fine_tune_norms;

  Fingerprint fp;
  fp.AddString(format->spec());
  fp.AddValue(o.beam_width);
  fp.AddValue(o.max_iterations);
  fp.AddValue(o.tolerance);
  fp.AddValue(o.cg_steps);
  fp.AddValue(o.damping);
  fp.AddString(c.ToString());
  if (o.fine_tune) {  // only then, so checkpoints of runs without fine-tuning stay valid
    fp.AddString("fine_tune");
    fp.AddValue(fto.steps);
    fp.AddValue(fto.lr);
    fp.AddValue(fto.val_fraction);
    fp.AddValue(fto.batch_sequences);
    fp.AddValue(fto.tune_norms);
  }
  for (const auto& s : calib) fp.Add(s.data(), s.size() * sizeof(int32_t));
  const uint64_t fingerprint = fp.value();
  if (!o.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.checkpoint_dir, ec);
    if (ec) return IoError("aqlm: cannot create checkpoint folder '" + o.checkpoint_dir + "': " + ec.message());
  }

  auto storage = std::make_shared<Storage>();
  storage->source = model.storage;
  LlamaModel q = model;
  ThreadPool pool(std::max(1, o.n_threads));
  const std::vector<double> rope_freqs = RopeFrequencies(c, model.rope_freq_factors);

  // Residual stream entering the current block: (n_seq * seq_len, dim).
  const int64_t n_tok = n_seq * seq_len;
  std::vector<float> x(static_cast<size_t>(n_tok * c.dim));
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t t = 0; t < seq_len; ++t) {
      ReadRow(model.token_embedding, calib[static_cast<size_t>(s)][static_cast<size_t>(t)],
              &x[static_cast<size_t>((s * seq_len + t) * c.dim)]);
    }
  }
  int64_t total_weights = 0;
  for (const LayerWeights& l : model.layers) {
    for (const WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) total_weights += w->rows * w->cols;
  }
  int64_t done_weights = 0, trained_weights = 0;
  double trained_seconds = 0.0;
  HessianScratch hessian_scratch;
  aqlm::BlockForwardBuffers forward_buffers;
  std::vector<float> xs;  // a copy of the stream, kept for the run (151 MB for 65,536 SmolLM2 tokens)

  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = q.layers[static_cast<size_t>(l)];
    WeightView* views[7] = {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down};
    const aqlm::BlockInput kinds[7] = {aqlm::BlockInput::kAttnIn, aqlm::BlockInput::kAttnIn,
                                       aqlm::BlockInput::kAttnIn, aqlm::BlockInput::kAttnOut,
                                       aqlm::BlockInput::kFfnIn,  aqlm::BlockInput::kFfnIn,
                                       aqlm::BlockInput::kFfnOut};
    std::vector<int64_t> sizes;
    for (WeightView* w : views) sizes.push_back(format->PackedBytes(w->rows, w->cols));
    if (o.fine_tune) {
      sizes.push_back(c.dim * static_cast<int64_t>(sizeof(float)));
      sizes.push_back(c.dim * static_cast<int64_t>(sizeof(float)));
    }
    std::vector<std::vector<uint8_t>> packed;
    const std::string ckpt = o.checkpoint_dir.empty() ? "" : CheckpointPath(o.checkpoint_dir, l);
    if (!ckpt.empty()) packed = ReadCheckpoint(ckpt, fingerprint, sizes);
    const bool from_checkpoint = !packed.empty();
    if (!from_checkpoint) {
      const auto layer_start = Clock::now();
      // Hessians of the four distinct inputs, from the stream the quantized blocks produced.
      std::vector<double> h[4];
      int64_t h_cols[4] = {0, 0, 0, 0};
      xs.assign(x.begin(), x.end());  // the unquantized block's output on this stream, below
      aqlm::BlockForward(c, model.layers[static_cast<size_t>(l)], rope_freqs, n_seq, seq_len, xs.data(), pool,
                         [&](aqlm::BlockInput kind, const float* in, int64_t n, int64_t cols) {
                           const int k = static_cast<int>(kind);
                           h[k].assign(static_cast<size_t>(cols * cols), 0.0);
                           h_cols[k] = cols;
                           AccumulateH(in, n, cols, h[k], hessian_scratch, pool);
                           Symmetrize(h[k], cols);
                           double mean_diag = 0.0;
                           for (int64_t a = 0; a < cols; ++a) mean_diag += h[k][static_cast<size_t>(a * cols + a)];
                           mean_diag /= static_cast<double>(cols);
                           const double damp = o.damping * (mean_diag > 0 ? mean_diag : 1.0);
                           for (int64_t a = 0; a < cols; ++a) h[k][static_cast<size_t>(a * cols + a)] += damp;
                         },
                         &forward_buffers);
      for (int i = 0; i < 7; ++i) {
        WeightView& w = *views[i];
        const std::vector<float> wf = ReadMatrix(w);
        aqlm::MatrixOptions mo;
        mo.params = aqlm_format->params();
        mo.beam_width = o.beam_width;
        mo.max_iterations = o.max_iterations;
        mo.tolerance = o.tolerance;
        mo.cg_steps = o.cg_steps;
        mo.pool = &pool;
        const int k = static_cast<int>(kinds[i]);
        LOWBIT_CHECK(h_cols[k] == w.cols);
        auto r = aqlm::QuantizeMatrix(wf.data(), w.rows, w.cols, h[k].data(), mo);
        if (!r.ok()) return Status(r.status().code(), "tensor '" + w.name + "': " + r.status().message());
        packed.emplace_back(static_cast<size_t>(sizes[static_cast<size_t>(i)]));
        aqlm_format->Pack(r->tensor, packed.back().data());
        done_weights += w.rows * w.cols;
        trained_weights += w.rows * w.cols;
        if (progress) {
          AqlmProgress p;
          p.layer = l;
          p.n_layers = c.n_layers;
          p.tensor = w.name;
          p.relative_loss = r->reference > 0 ? r->loss() / r->reference : 0.0;
          p.iterations = r->history.empty() ? 0 : r->history.back().iteration;
          p.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
          const double rate = (trained_seconds + std::chrono::duration<double>(Clock::now() - layer_start).count()) /
                              static_cast<double>(trained_weights);
          p.eta_seconds = rate * static_cast<double>(total_weights - done_weights);
          progress(p);
        }
      }
      if (o.fine_tune) {
        // xs now holds the unquantized block's output on this stream: the target.
        AqlmTensor tensors[7];
        aqlm::BlockParams bp;
        for (int i = 0; i < 7; ++i) {
          tensors[i] = aqlm_format->Unpack(packed[static_cast<size_t>(i)].data(), views[i]->rows, views[i]->cols);
          bp.tensors[i] = &tensors[i];
        }
        bp.attn_norm = &lw.attn_norm;
        bp.ffn_norm = &lw.ffn_norm;
        if (c.qkv_bias) {
          bp.bq = lw.bq.data();
          bp.bk = lw.bk.data();
          bp.bv = lw.bv.data();
        }
        LOWBIT_ASSIGN_OR_RETURN(aqlm::FineTuneResult ft,
                                aqlm::FineTuneBlock(c, rope_freqs, n_seq, seq_len, x.data(), xs.data(), bp, fto, pool));
        if (ft.best_step > 0) {
          for (int i = 0; i < 7; ++i) aqlm_format->Pack(tensors[i], packed[static_cast<size_t>(i)].data());
        }
        packed.push_back(FloatBytes(lw.attn_norm));
        packed.push_back(FloatBytes(lw.ffn_norm));
        if (progress) {
          AqlmProgress p;
          p.layer = l;
          p.n_layers = c.n_layers;
          p.tensor = "blk." + std::to_string(l) + " fine-tune";
          p.fine_tune = true;
          p.fine_tune_val_before = ft.val_before;
          p.fine_tune_val_after = ft.val_after;
          p.fine_tune_train_before = ft.train_before;
          p.fine_tune_train_after = ft.train_after;
          p.fine_tune_best_step = ft.best_step;
          p.iterations = fto.steps;
          p.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
          progress(p);
        }
      }
      trained_seconds += std::chrono::duration<double>(Clock::now() - layer_start).count();
      if (!ckpt.empty()) {
        std::vector<const std::vector<uint8_t>*> refs;
        for (const auto& p : packed) refs.push_back(&p);
        LOWBIT_RETURN_IF_ERROR(WriteCheckpoint(ckpt, fingerprint, refs));
      }
    } else {
      if (o.fine_tune) {
        lw.attn_norm = BytesToFloats(packed[7]);
        lw.ffn_norm = BytesToFloats(packed[8]);
      }
      for (WeightView* w : views) done_weights += w->rows * w->cols;
      if (progress) {
        AqlmProgress p;
        p.layer = l;
        p.n_layers = c.n_layers;
        p.tensor = "block " + std::to_string(l);
        p.from_checkpoint = true;
        p.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
        progress(p);
      }
    }
    for (int i = 0; i < 7; ++i) {
      storage->buffers.push_back(std::move(packed[static_cast<size_t>(i)]));
      views[i]->format = format;
      views[i]->data = storage->buffers.back().data();
      PrepareWeightForIsa(*views[i], kernels::ActiveIsa());
    }
    // The stream leaving the quantized block feeds the next one.
    aqlm::BlockForward(c, lw, rope_freqs, n_seq, seq_len, x.data(), pool, nullptr, &forward_buffers);
    if (o.stop_after_layer >= 0 && l >= o.stop_after_layer && l + 1 < c.n_layers) {
      return Status(StatusCode::kInternal, "aqlm: stopped after block " + std::to_string(l) +
                                               " (stop_after_layer)");
    }
  }
  q.storage = storage;
  return q;
}

}  // namespace lowbit
