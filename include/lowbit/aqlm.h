// AQLM model quantization (Egiazarian et al. 2024, arXiv:2401.06118): the seven linear layers of
// every transformer block become additive-codebook tensors (format "aqlm", docs/formats/additive.md),
// trained against the Hessians H = X X^T of their calibration inputs; token embedding, classifier,
// norms and biases are kept as they are (AQLM's linear_weights_not_to_quantize).
//
// Procedure (src/quant/aqlm/aqlm_model.cc):
//   1. calibration sequences: the caller's token ids, or (calibration empty) n_sequences sequences
//      of seq_len tokens sampled from the unquantized model itself, starting at `bos`
//      (temperature 1, no top-k/top-p), seeded by `seed` ("--calib self");
//   2. the residual stream entering block 0 is the token embedding of every calibration token;
//      for each block l in order: run block l (weights not yet quantized) on the stream that the
//      already quantized blocks 0..l-1 produced, accumulate H (double) for its four distinct
//      inputs, quantize its seven matrices (aqlm_matrix.h) with H + damping * mean(diag H) * I,
//      then advance the stream through the quantized block;
//   3. after each block, its packed tensors are written to checkpoint_dir/aqlm_layer_<l>.bin
//      (temporary file + rename); a later run with the same options and calibration data loads
//      finished blocks from there instead of training them again, and produces the same bytes as an
//      uninterrupted run.
// Block fine-tuning (codebooks/scales/norms against the unquantized block's outputs) is not
// implemented yet: fine_tune = true returns kUnimplemented.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/model.h"
#include "lowbit/status.h"

namespace lowbit {

struct AqlmOptions {
  std::string scheme = "aqlm_2x8g8";  // preset name or "aqlm:m=..,b=..,g=.." spec
  // Calibration token sequences (each >= 2 tokens, all the same length); empty: self-sampled.
  std::vector<std::vector<int32_t>> calibration;
  int64_t n_sequences = 32;  // self-sampled sequences
  int64_t seq_len = 128;     // self-sampled sequence length (bos included)
  int32_t bos = 1;           // first token of self-sampled sequences
  uint64_t seed = 0;
  int beam_width = 1;
  int max_iterations = 8;    // rounds of (codes, codebooks, scales) per matrix
  double tolerance = 1e-3;   // stop a matrix when a round improves its loss by less (relative)
  int cg_steps = 12;         // conjugate-gradient steps per codebook update
  double damping = 1e-4;     // added to H's diagonal, relative to its mean
  bool fine_tune = false;    // block fine-tuning (not implemented yet)
  int fine_tune_steps = 0;
  std::string checkpoint_dir;  // empty: no checkpoints
  int n_threads = 2;
  int64_t stop_after_layer = -1;  // >= 0: return kInternal after that block is checkpointed (tests)
};

struct AqlmProgress {
  int64_t layer = 0, n_layers = 0;
  std::string tensor;          // e.g. "blk.3.ffn_up" (the view's name)
  double relative_loss = 0.0;  // tr(D H D^T) / tr(W H W^T) of the finished matrix
  int iterations = 0;
  bool from_checkpoint = false;
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;    // by weights remaining at the rate so far
};
using AqlmProgressFn = std::function<void(const AqlmProgress&)>;

// The quantized model (owning its packed tensors, keeping `model`'s storage alive).
Result<LlamaModel> QuantizeModelAqlm(const LlamaModel& model, const AqlmOptions& options,
                                     const AqlmProgressFn& progress = nullptr);

// Self-sampled calibration sequences (step 1 above), exposed for tests and the CLI.
Result<std::vector<std::vector<int32_t>>> SampleCalibration(const LlamaModel& model,
                                                            const AqlmOptions& options);

}  // namespace lowbit
