// FineTuneAqlmGlobal (include/lowbit/aqlm.h): teacher outputs, the Adam loop over mini-batches,
// held-out keep-best, and the packed result (the loss and its gradient: global_finetune.cc).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "formats/additive.h"
#include "lowbit/aqlm.h"
#include "quant/aqlm/adam.h"
#include "quant/aqlm/block_finetune.h"
#include "quant/aqlm/code_step.h"
#include "quant/aqlm/global_finetune.h"
#include "runtime/linear.h"
#include "runtime/ops.h"
#include "runtime/thread_pool.h"

namespace lowbit {
namespace {

using aqlm::kBlockMatrices;
inline size_t Sz(int64_t a, int64_t b = 1) { return static_cast<size_t>(a * b); }

struct OwnedTensors {
  std::shared_ptr<const void> source;  // the student's previous storage (embeddings, classifier)
  std::vector<std::vector<uint8_t>> buffers;
};

Status CheckModels(const LlamaModel& teacher, const LlamaModel& student) {
  const LlamaConfig &a = teacher.config, &b = student.config;
  if (a.dim != b.dim || a.hidden_dim != b.hidden_dim || a.n_layers != b.n_layers || a.n_heads != b.n_heads ||
      a.n_kv_heads != b.n_kv_heads || a.head_dim != b.head_dim || a.vocab_size != b.vocab_size) {
    return InvalidArgument("aqlm global fine-tuning: the teacher (" + teacher.source + ": " + a.ToString() +
                           ") and the student (" + student.source + ": " + b.ToString() +
                           ") differ in shape");
  }
  for (const LayerWeights& l : student.layers) {
    for (int i = 0; i < kBlockMatrices; ++i) {
      const WeightView& w = *aqlm::BlockMatrix(l, i);
      if (dynamic_cast<const AqlmFormat*>(w.format.get()) == nullptr) {
        return InvalidArgument("aqlm global fine-tuning: " + student.source + ": tensor '" + w.name +
                               "' is " + w.format_name() + ", expected an aqlm format");
      }
    }
  }
  return Status::Ok();
}

Status CheckInputs(const LlamaConfig& c, const std::vector<std::vector<int32_t>>& seqs,
                   const AqlmGlobalFineTuneOptions& o) {
  if (seqs.size() < 2) {
    return InvalidArgument("aqlm global fine-tuning: " + std::to_string(seqs.size()) +
                           " calibration sequence(s), needs >= 2 (training + validation)");
  }
  for (const auto& s : seqs) {
    if (s.size() != seqs[0].size() || s.size() < 2) {
      return InvalidArgument("aqlm global fine-tuning: calibration sequences must all have the same length >= 2");
    }
    for (int32_t t : s) {
      if (t < 0 || t >= c.vocab_size) {
        return InvalidArgument("aqlm global fine-tuning: calibration token " + std::to_string(t) +
                               " outside the vocabulary");
      }
    }
  }
  if (o.epochs < 1) return InvalidArgument("aqlm global fine-tuning: epochs = " + std::to_string(o.epochs) + ", expected >= 1");
  if (!(o.lr > 0.0) || !std::isfinite(o.lr)) {
    return InvalidArgument("aqlm global fine-tuning: lr = " + std::to_string(o.lr) + ", expected > 0");
  }
  if (o.batch_sequences < 1) {
    return InvalidArgument("aqlm global fine-tuning: batch_sequences = " + std::to_string(o.batch_sequences) +
                           ", expected >= 1");
  }
  if (!(o.code_fraction >= 0.0 && o.code_fraction <= 1.0) || !(o.code_step > 0.0) || !std::isfinite(o.code_step)) {
    return InvalidArgument("aqlm global fine-tuning: code_fraction = " + std::to_string(o.code_fraction) +
                           ", code_step = " + std::to_string(o.code_step) + ", expected in [0, 1] and > 0");
  }
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0)) {
    return InvalidArgument("aqlm global fine-tuning: val_fraction = " + std::to_string(o.val_fraction) +
                           ", expected in (0, 1)");
  }
  return Status::Ok();
}

// Every trainable value: per matrix (layer-major, kBlockMatrices per layer) its codebooks and
// scales, then per layer the attention and FFN norm gains, then the output norm gain.
struct Params {
  std::vector<std::vector<float>> group;
  int64_t n_matrices = 0;
  std::vector<float>& codebooks(int64_t i) { return group[Sz(2 * i)]; }
  std::vector<float>& scales(int64_t i) { return group[Sz(2 * i + 1)]; }
  std::vector<float>& attn_norm(int64_t l) { return group[Sz(2 * n_matrices + 2 * l)]; }
  std::vector<float>& ffn_norm(int64_t l) { return group[Sz(2 * n_matrices + 2 * l + 1)]; }
  std::vector<float>& output_norm() { return group.back(); }
};

// The student's frozen parts and the dense buffers the parameters are decoded into.
class DenseStudent {
 public:
  DenseStudent(const LlamaModel& student, std::vector<AqlmTensor>& tensors, const std::vector<float>& head)
      : c_(student.config), student_(student), tensors_(tensors) {
    dense_.resize(tensors.size());
    dense_t_.resize(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      dense_[i].resize(Sz(tensors[i].rows, tensors[i].cols));
      dense_t_[i].resize(dense_[i].size());
    }
    model_.blocks.resize(Sz(c_.n_layers));
    model_.head = head.data();
  }

  // Decodes p (codebooks and scales as given, not rounded) into the dense model.
  const aqlm::DenseModel<float>& Decode(Params& p, ThreadPool& pool) {
    for (size_t i = 0; i < tensors_.size(); ++i) {
      AqlmTensor& t = tensors_[i];
      t.codebooks.swap(p.codebooks(static_cast<int64_t>(i)));
      t.scales.swap(p.scales(static_cast<int64_t>(i)));
      aqlm::DecodeDense(t, dense_[i].data(), pool);
      aqlm::TransposeMatrix(dense_[i].data(), t.rows, t.cols, dense_t_[i].data(), pool);
      t.codebooks.swap(p.codebooks(static_cast<int64_t>(i)));
      t.scales.swap(p.scales(static_cast<int64_t>(i)));
    }
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      aqlm::DenseBlock<float>& b = model_.blocks[Sz(l)];
      for (int i = 0; i < kBlockMatrices; ++i) {
        b.w[i] = dense_[Sz(l * kBlockMatrices + i)].data();
        b.w_t[i] = dense_t_[Sz(l * kBlockMatrices + i)].data();
      }
      b.attn_norm = p.attn_norm(l).data();
      b.ffn_norm = p.ffn_norm(l).data();
      const LayerWeights& lw = student_.layers[Sz(l)];
      if (c_.qkv_bias) {
        b.bq = lw.bq.data();
        b.bk = lw.bk.data();
        b.bv = lw.bv.data();
      }
    }
    model_.output_norm = p.output_norm().data();
    return model_;
  }

 private:
  const LlamaConfig& c_;
  const LlamaModel& student_;
  std::vector<AqlmTensor>& tensors_;
  std::vector<std::vector<float>> dense_, dense_t_;  // (rows, cols) and transposed
  aqlm::DenseModel<float> model_;
};

}  // namespace

Result<AqlmGlobalFineTuneResult> FineTuneAqlmGlobal(const LlamaModel& teacher_model, LlamaModel* student,
                                                    const std::vector<std::vector<int32_t>>& seqs,
                                                    const AqlmGlobalFineTuneOptions& o,
                                                    const AqlmGlobalFineTuneProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  LOWBIT_RETURN_IF_ERROR(CheckModels(teacher_model, *student));
  const LlamaConfig& c = student->config;
  LOWBIT_RETURN_IF_ERROR(CheckInputs(c, seqs, o));
  const int64_t n_seq = static_cast<int64_t>(seqs.size()), seq_len = static_cast<int64_t>(seqs[0].size());
  const int64_t dim = c.dim, n_layers = c.n_layers;
  AqlmGlobalFineTuneResult res;
  res.n_val = std::clamp<int64_t>(std::llround(o.val_fraction * static_cast<double>(n_seq)), 1, n_seq - 1);
  res.n_train = n_seq - res.n_val;
  const int64_t batch = std::min(o.batch_sequences, res.n_train);
  const int64_t steps_per_epoch = (res.n_train + batch - 1) / batch;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  ThreadPool pool(std::max(1, o.n_threads));
  const std::vector<double> rope_freqs = RopeFrequencies(c, student->rope_freq_factors);
  const size_t stride = Sz(seq_len, dim);

  // Teacher: its classifier input for every calibration token, through the same dense f32 block
  // as the student (decoded weights: f32 activations, as the evaluation's --exact reference).
  // Layers outside, batches inside: each matrix is decoded once, and teacher_hidden carries
  // every sequence's residual stream from layer to layer.
  const LlamaModel& teacher = teacher_model;
  std::vector<float> teacher_hidden(Sz(n_seq) * stride);
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t t = 0; t < seq_len; ++t) {
      ReadRow(teacher.token_embedding, seqs[Sz(s)][Sz(t)], &teacher_hidden[Sz(s) * stride + Sz(t, dim)]);
    }
  }
  // Sequences per teacher batch: more than a training batch (the teacher keeps no activations),
  // so each task of the products runs more tokens through the same packed weight panels. Every
  // token's result is independent of the batch it runs in.
  const int64_t teacher_batch = std::max<int64_t>(batch, 16);
  // One block's activations, reused for every batch and layer (fresh buffers cost page faults).
  aqlm::BlockActivations<float> teacher_acts;
  for (int64_t l = 0; l < n_layers; ++l) {
    const LayerWeights& lw = teacher.layers[Sz(l)];
    std::vector<float> w[kBlockMatrices], w_t[kBlockMatrices];
    aqlm::DenseBlock<float> b;
    for (int i = 0; i < kBlockMatrices; ++i) {
      const WeightView& view = *aqlm::BlockMatrix(lw, i);
      w[i] = ReadMatrix(view);
      w_t[i].resize(w[i].size());
      aqlm::TransposeMatrix(w[i].data(), view.rows, view.cols, w_t[i].data(), pool);  // once per layer
      b.w[i] = w[i].data();
      b.w_t[i] = w_t[i].data();
    }
    b.attn_norm = lw.attn_norm.data();
    b.ffn_norm = lw.ffn_norm.data();
    if (c.qkv_bias) {
      b.bq = lw.bq.data();
      b.bk = lw.bk.data();
      b.bv = lw.bv.data();
    }
    for (int64_t s0 = 0; s0 < n_seq; s0 += teacher_batch) {
      const int64_t count = std::min(teacher_batch, n_seq - s0);
      float* x = &teacher_hidden[Sz(s0) * stride];
      aqlm::BlockApply<float>(c, b, rope_freqs, count, seq_len, x, pool, &teacher_acts);
    }
    if (progress) {
      AqlmGlobalFineTuneProgress p;
      p.stage = AqlmGlobalFineTuneProgress::Stage::kTeacher;
      p.step = l + 1;
      p.steps = n_layers;
      p.elapsed_seconds = elapsed();
      progress(p);
    }
  }
  for (int64_t t = 0; t < n_seq * seq_len; ++t) {
    float* h = &teacher_hidden[Sz(t, dim)];
    RmsNorm(h, teacher.output_norm.data(), dim, c.rms_eps, h);
  }
  // The classifiers, decoded once; AQLM files keep the teacher's classifier bytes, and then the
  // two share one copy (113 MB of floats for SmolLM2).
  const std::vector<float> teacher_head = ReadMatrix(teacher.output);
  const WeightView &th = teacher.output, &sh = student->output;
  const bool same_head = th.format_name() == sh.format_name() && th.rows == sh.rows && th.cols == sh.cols &&
                         th.n_bytes() == sh.n_bytes() &&
                         std::memcmp(th.data, sh.data, static_cast<size_t>(th.n_bytes())) == 0;
  const std::vector<float> own_student_head = same_head ? std::vector<float>() : ReadMatrix(sh);
  const std::vector<float>& student_head = same_head ? teacher_head : own_student_head;

  // The student's parameters.
  std::vector<AqlmTensor> tensors;
  Params master;
  master.n_matrices = n_layers * kBlockMatrices;
  for (LayerWeights& l : student->layers) {
    for (int i = 0; i < kBlockMatrices; ++i) {
      const WeightView& w = *aqlm::BlockMatrix(l, i);
      const auto* af = dynamic_cast<const AqlmFormat*>(w.format.get());
      tensors.push_back(af->Unpack(w.data, w.rows, w.cols));
      master.group.push_back(tensors.back().codebooks);
      master.group.push_back(tensors.back().scales);
    }
  }
  for (const LayerWeights& l : student->layers) {
    master.group.push_back(l.attn_norm);
    master.group.push_back(l.ffn_norm);
  }
  master.group.push_back(student->output_norm);
  const size_t n_groups = master.group.size();
  DenseStudent dense(*student, tensors, student_head);

  std::vector<float> x0;
  auto embed = [&](int64_t first, int64_t count) {
    x0.resize(Sz(count) * stride);
    for (int64_t s = 0; s < count; ++s) {
      for (int64_t t = 0; t < seq_len; ++t) {
        ReadRow(student->token_embedding, seqs[Sz(first + s)][Sz(t)], &x0[Sz(s * seq_len + t, dim)]);
      }
    }
  };
  aqlm::ModelKlScratch<float> kl_scratch;  // activations, reused from step to step
  auto loss = [&](const aqlm::DenseModel<float>& m, int64_t first, int64_t count,
                  aqlm::ModelGradients<float>* grads) {
    embed(first, count);
    const aqlm::TeacherOutputs<float> t{&teacher_hidden[Sz(first) * stride], teacher_head.data()};
    return aqlm::ModelKl<float>(c, m, t, rope_freqs, count, seq_len, x0.data(), pool, grads, &kl_scratch);
  };
  // Held-out KL of what would be stored: codebooks and scales in binary16, gains in f32.
  auto validate = [&](Params& p) {
    Params stored = p;
    for (int64_t i = 0; i < 2 * master.n_matrices; ++i) {
      for (float& v : stored.group[Sz(i)]) v = RoundToHalfSaturating(v);
    }
    const aqlm::DenseModel<float>& m = dense.Decode(stored, pool);
    double sum = 0.0;
    for (int64_t s0 = res.n_train; s0 < n_seq; s0 += batch) {
      const int64_t count = std::min(batch, n_seq - s0);
      sum += loss(m, s0, count, nullptr) * static_cast<double>(count);
    }
    return std::make_pair(sum / static_cast<double>(res.n_val), std::move(stored));
  };
  auto report_validation = [&](int epoch, double kl, bool best, int64_t codes_changed) {
    if (!progress) return;
    AqlmGlobalFineTuneProgress p;
    p.stage = AqlmGlobalFineTuneProgress::Stage::kValidation;
    p.epoch = epoch;
    p.epochs = o.epochs;
    p.kl = kl;
    p.best = best;
    p.codes_changed = codes_changed;
    p.elapsed_seconds = elapsed();
    progress(p);
  };

  res.val_before = validate(master).first;
  report_validation(0, res.val_before, true, 0);
  double best_val = res.val_before;
  Params best;
  // Code steps: the gradient of every matrix summed over an epoch's steps, and the codes of the
  // best point.
  const bool code_steps = o.code_fraction > 0.0;
  std::vector<std::vector<float>> grad_sum(code_steps ? Sz(master.n_matrices) : 0);
  for (int64_t i = 0; i < static_cast<int64_t>(grad_sum.size()); ++i) {
    grad_sum[Sz(i)].assign(Sz(tensors[Sz(i)].rows, tensors[Sz(i)].cols), 0.0f);
  }
  std::vector<std::vector<uint32_t>> best_codes;
  std::vector<aqlm::Adam> adam(n_groups);
  std::vector<double> base_step(n_groups);
  for (size_t gi = 0; gi < n_groups; ++gi) {
    const double rms = aqlm::Rms(master.group[gi]);
    base_step[gi] = o.lr * (rms > 0.0 ? rms : 1.0);
  }
  aqlm::ModelGradients<float> grads;
  std::vector<double> d_cb, d_sc, d_norm;
  const auto train_start = Clock::now();
  int step = 0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      ++step;
      const double decay = o.cosine_lr ? 0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(step - 1) /
                                                               static_cast<double>(total_steps)))
                                       : 1.0;
      for (size_t gi = 0; gi < n_groups; ++gi) adam[gi].step_size = base_step[gi] * decay;
      const int64_t first = b * batch, count = std::min(batch, res.n_train - first);
      const double kl = loss(dense.Decode(master, pool), first, count, &grads);
      for (int64_t i = 0; i < master.n_matrices; ++i) {
        AqlmTensor& t = tensors[Sz(i)];
        t.codebooks.swap(master.codebooks(i));
        t.scales.swap(master.scales(i));
        aqlm::CodebookScaleGradients(t, grads.blocks[Sz(i / kBlockMatrices)].w[i % kBlockMatrices].data(),
                                     &d_cb, &d_sc, pool);
        t.codebooks.swap(master.codebooks(i));
        t.scales.swap(master.scales(i));
        adam[Sz(2 * i)].Step(master.codebooks(i), d_cb, step);
        adam[Sz(2 * i + 1)].Step(master.scales(i), d_sc, step);
        if (code_steps) {
          const std::vector<float>& g = grads.blocks[Sz(i / kBlockMatrices)].w[i % kBlockMatrices];
          std::vector<float>& sum = grad_sum[Sz(i)];
          for (size_t k = 0; k < sum.size(); ++k) sum[k] += g[k];
        }
      }
      if (o.tune_norms) {
        auto norm_step = [&](std::vector<float>& value, const std::vector<float>& g, size_t gi) {
          d_norm.assign(g.begin(), g.end());
          adam[gi].Step(value, d_norm, step);
        };
        for (int64_t l = 0; l < n_layers; ++l) {
          norm_step(master.attn_norm(l), grads.blocks[Sz(l)].attn_norm, Sz(2 * master.n_matrices + 2 * l));
          norm_step(master.ffn_norm(l), grads.blocks[Sz(l)].ffn_norm, Sz(2 * master.n_matrices + 2 * l + 1));
        }
        norm_step(master.output_norm(), grads.output_norm, n_groups - 1);
      }
      if (progress) {
        AqlmGlobalFineTuneProgress p;
        p.stage = AqlmGlobalFineTuneProgress::Stage::kStep;
        p.epoch = epoch;
        p.epochs = o.epochs;
        p.step = step;
        p.steps = total_steps;
        p.kl = kl;
        p.elapsed_seconds = elapsed();
        p.eta_seconds = std::chrono::duration<double>(Clock::now() - train_start).count() /
                        static_cast<double>(step) * static_cast<double>(total_steps - step);
        progress(p);
      }
    }
    int64_t changed = 0;
    if (code_steps) {
      const aqlm::CodeStepOptions co{.step = o.code_step, .fraction = o.code_fraction, .sign = o.code_sign};
      for (int64_t i = 0; i < master.n_matrices; ++i) {
        AqlmTensor& t = tensors[Sz(i)];
        t.codebooks.swap(master.codebooks(i));
        t.scales.swap(master.scales(i));
        changed += aqlm::CodeStep(&t, grad_sum[Sz(i)].data(), co, pool).groups_changed;
        t.codebooks.swap(master.codebooks(i));
        t.scales.swap(master.scales(i));
        std::fill(grad_sum[Sz(i)].begin(), grad_sum[Sz(i)].end(), 0.0f);
      }
      res.codes_changed += changed;
    }
    auto [val, stored] = validate(master);
    const bool improved = val < best_val;
    if (improved) {
      best_val = val;
      best = std::move(stored);
      res.best_epoch = epoch;
      if (code_steps) {
        best_codes.resize(tensors.size());
        for (size_t i = 0; i < tensors.size(); ++i) best_codes[i] = tensors[i].codes;
      }
    }
    report_validation(epoch, val, improved, changed);
  }
  res.steps = step;
  res.val_after = best_val;
  if (res.best_epoch == 0) return res;

  // Pack the kept point into tensors the student owns.
  auto owned = std::make_shared<OwnedTensors>();
  owned->source = student->storage;
  for (int64_t i = 0; i < master.n_matrices; ++i) {
    AqlmTensor& t = tensors[Sz(i)];
    t.codebooks = best.codebooks(i);
    t.scales = best.scales(i);
    if (code_steps) t.codes = best_codes[Sz(i)];
    WeightView& w = *aqlm::BlockMatrix(student->layers[Sz(i / kBlockMatrices)], static_cast<int>(i % kBlockMatrices));
    const auto* af = dynamic_cast<const AqlmFormat*>(w.format.get());
    owned->buffers.emplace_back(Sz(af->PackedBytes(w.rows, w.cols)));
    af->Pack(t, owned->buffers.back().data());
    w.data = owned->buffers.back().data();
    w.kernel_plan.reset();
    PrepareWeightForIsa(w, kernels::ActiveIsa());
  }
  for (int64_t l = 0; l < n_layers; ++l) {
    student->layers[Sz(l)].attn_norm = best.attn_norm(l);
    student->layers[Sz(l)].ffn_norm = best.ffn_norm(l);
  }
  student->output_norm = best.output_norm();
  student->storage = owned;
  return res;
}

}  // namespace lowbit
