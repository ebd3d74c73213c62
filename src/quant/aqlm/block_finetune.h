// AQLM block fine-tuning (Egiazarian et al. 2024, arXiv:2401.06118, section 3.3): after the seven
// linears of a transformer block are quantized, the continuous parameters of the block are tuned
// so that its outputs match the unquantized block's outputs on the same inputs; the codes stay
// frozen.
//
// Objective: L = mean over tokens and features of (block_q(X) - Y)^2, where X (n_seq * seq_len,
//   dim) is the residual stream entering the block as produced by the already quantized upstream
//   blocks, and Y = the unquantized block applied to X (block_backward.h computes L and dL/dW).
// Parameters: per matrix the codebooks (an f32 master copy of the binary16 codewords) and the
//   per-row scales, plus the attn_norm and ffn_norm gains (f32). Through
//     W[r, jG + i] = s_r * sum_m C_m[k_m(r, j)][i]
//   the chain rule gives
//     dL/dC_m[e][i] = sum over (r, j) with k_m(r, j) = e of s_r * dL/dW[r, jG + i]
//     dL/ds_r       = sum_j sum_i dL/dW[r, jG + i] * sum_m C_m[k_m(r, j)][i]
//   (padding columns jG + i >= cols carry no gradient).
// Optimizer: Adam (beta1 0.9, beta2 0.999, eps 1e-8 relative to the step size), full steps over
//   mini-batches of `batch_sequences` training sequences taken in order. The learning rate is
//   relative: each parameter group (one matrix's codebooks, one matrix's scales, one norm vector)
//   moves by about lr * RMS(its initial values) per step, because the groups differ in magnitude by
//   orders (scales ~ 1e-2, codewords and norm gains ~ 1).
// Validation / keep-best: the last max(1, round(val_fraction * n_seq)) sequences are held out. The
//   validation loss is measured with the parameters as they will be stored (codebooks and scales
//   rounded to binary16) before training and after every epoch (a pass over the training
//   sequences) and after the last step; the best such point is returned. When no point beats the
//   untrained block, the tensors and norms are returned unchanged (bit for bit).
// Cost per step: one forward and backward of the block on a batch (about 3x the forward FLOPs),
//   plus a decode of the seven matrices; memory: the dense f32 weights, their gradients and the
//   batch's activations.
// Determinism: every reduction runs in a fixed order, results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/additive.h"
#include "lowbit/model.h"
#include "lowbit/status.h"
#include "quant/aqlm/block_backward.h"

namespace lowbit {
class ThreadPool;
namespace aqlm {

struct FineTuneOptions {
  int steps = 32;               // Adam steps (>= 1)
  double lr = 1e-3;             // relative learning rate (see above)
  double val_fraction = 0.125;  // share of sequences held out for validation (>= 1 sequence)
  int64_t batch_sequences = 0;  // training sequences per step; <= 0: all of them
  bool tune_norms = true;       // false: only codebooks and scales move (norm gains stay as given)
};

struct FineTuneResult {
  double val_before = 0.0, val_after = 0.0;      // validation loss: untrained, returned
  double train_before = 0.0, train_after = 0.0;  // the same on the training split
  int best_step = 0;                             // step of the returned parameters (0: untrained)
  int64_t n_train = 0, n_val = 0;                // sequences in each split
};

// The trainable state of one block.
struct BlockParams {
  AqlmTensor* tensors[kBlockMatrices] = {};  // wq .. w_down (codes frozen), binary16-exact on input
  std::vector<float>* attn_norm = nullptr;
  std::vector<float>* ffn_norm = nullptr;
  const float* bq = nullptr;  // qkv biases (constants), read only when c.qkv_bias
  const float* bk = nullptr;
  const float* bv = nullptr;
};

// x, target: (n_seq * seq_len, dim), n_seq >= 2. Updates *params in place to the best point.
// Errors: n_seq < 2 or bad options (named).
Result<FineTuneResult> FineTuneBlock(const LlamaConfig& c, const std::vector<double>& rope_freqs,
                                     int64_t n_seq, int64_t seq_len, const float* x,
                                     const float* target, const BlockParams& params,
                                     const FineTuneOptions& options, ThreadPool& pool);

// ---- pieces, exposed for tests ----

// out (rows, cols) = the tensor decoded in f32 from its (not necessarily binary16) fields, the
// same arithmetic as AqlmTensor::Decode; rows in parallel.
void DecodeDense(const AqlmTensor& t, float* out, ThreadPool& pool);

// The chain rule above: d_codebooks (M * K * G) and d_scales (rows) from dL/dW (rows, cols), in
// double, summed in a fixed order (independent of the thread count).
void CodebookScaleGradients(const AqlmTensor& t, const float* dw, std::vector<double>* d_codebooks,
                            std::vector<double>* d_scales, ThreadPool& pool);

}  // namespace aqlm
}  // namespace lowbit
