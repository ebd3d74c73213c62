// AQLM global (end-to-end) fine-tuning: after every block is quantized, the continuous parameters
// of the whole student model (each AQLM matrix's codebooks and row scales, every norm gain; codes,
// embeddings and the classifier frozen) are tuned so that its next-token distribution matches the
// unquantized teacher's on calibration sequences (Egiazarian et al. 2024, arXiv:2401.06118,
// "end-to-end fine-tuning"; Malinovskii et al. 2024, arXiv:2405.14852, section 4).
//
// Objective: L = mean over tokens t of KL(p_teacher(. | t) || p_student(. | t)), in nats, with the
//   full vocabulary; the teacher runs with exact kernels (f32 activations) as the evaluation's
//   reference does.
// Pass per mini-batch: the student forward keeps the residual stream entering every block; the
//   classifier and the KL run in chunks of tokens (logits are never stored for the whole batch);
//   the backward pass walks the blocks in reverse, recomputing each block's forward from its kept
//   input (block_backward.h), so memory is O(n_layers * tokens * dim) plus one block's
//   activations.
// Optimizer and keep-best: as block fine-tuning (block_finetune.h): Adam with a relative step
//   size per parameter group; the last val_fraction of the sequences is held out, its KL is
//   measured with the parameters as they will be stored (codebooks and scales rounded to binary16)
//   before training and after every epoch, and the best point is kept (the untrained model,
//   unchanged, when none is better).
// Code steps (optional): after every epoch, PV-tuning's discrete step may move a share of each
//   matrix's codes down the epoch's summed gradient (code_step.h).
// Determinism: every reduction runs in a fixed order; results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/aqlm.h"
#include "lowbit/model.h"
#include "quant/aqlm/block_backward.h"

namespace lowbit {
class ThreadPool;
namespace aqlm {

// A student with dense weights (decoded), in T.
template <class T>
struct DenseModel {
  std::vector<DenseBlock<T>> blocks;  // (n_layers)
  const T* output_norm = nullptr;     // (dim)
  const T* head = nullptr;            // (vocab, dim) classifier
};

template <class T>
struct ModelGradients {
  std::vector<BlockGradients<T>> blocks;  // (n_layers)
  std::vector<T> output_norm;             // (dim)
};

// The teacher's side of the loss for a batch: its classifier input (after the final norm) per
// token, and its classifier.
template <class T>
struct TeacherOutputs {
  const T* hidden = nullptr;  // (n, dim)
  const T* head = nullptr;    // (vocab, dim)
};

// Buffers ModelKl keeps between calls: the blocks' activations (2.4 GB for 2,048 SmolLM2-135M
// tokens) with gradients, one block's without. Fresh buffers on every call cost page faults and
// zeroing: about 5% of a training step and 15% of a forward-only pass.
template <class T>
struct ModelKlScratch {
  std::vector<BlockActivations<T>> acts;  // per block, for the backward pass
  BlockActivations<T> forward_only;       // reused block by block when there is no backward pass
};

// Mean KL(teacher || student) over the n = n_seq * seq_len tokens whose embeddings are x0
// (n, dim). grads non-null: filled with dL/d(every dense weight and gain); scratch non-null:
// its buffers are used (and kept) instead of fresh ones.
template <class T>
double ModelKl(const LlamaConfig& c, const DenseModel<T>& student, const TeacherOutputs<T>& teacher,
               const std::vector<double>& rope_freqs, int64_t n_seq, int64_t seq_len, const T* x0,
               ThreadPool& pool, ModelGradients<T>* grads = nullptr, ModelKlScratch<T>* scratch = nullptr);

extern template double ModelKl<float>(const LlamaConfig&, const DenseModel<float>&,
                                      const TeacherOutputs<float>&, const std::vector<double>&,
                                      int64_t, int64_t, const float*, ThreadPool&,
                                      ModelGradients<float>*, ModelKlScratch<float>*);
extern template double ModelKl<double>(const LlamaConfig&, const DenseModel<double>&,
                                       const TeacherOutputs<double>&, const std::vector<double>&,
                                       int64_t, int64_t, const double*, ThreadPool&,
                                       ModelGradients<double>*, ModelKlScratch<double>*);

}  // namespace aqlm
}  // namespace lowbit
