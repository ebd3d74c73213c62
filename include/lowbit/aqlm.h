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
//      with fine_tune, the block is then fine-tuned before the stream advances: codebooks, scales
//      and the two norm gains (codes frozen) are tuned by Adam so that the quantized block's
//      outputs match the unquantized block's outputs on the same input stream, keeping the best
//      point on held-out calibration sequences (src/quant/aqlm/block_finetune.h,
//      docs/formats/additive.md "Block fine-tuning"); the tuned norm gains replace the model's;
//   3. after each block, its packed tensors (and, with fine_tune, its two norm gains) are written
//      to checkpoint_dir/aqlm_layer_<l>.bin (temporary file + rename); a later run with the same
//      options and calibration data loads finished blocks from there instead of training them
//      again, and produces the same bytes as an uninterrupted run.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
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
  // Block fine-tuning (step 2 above). Needs >= 2 calibration sequences.
  bool fine_tune = false;
  int fine_tune_steps = 32;              // Adam steps per block (>= 1 when fine_tune)
  double fine_tune_lr = 1e-3;            // relative: each parameter group moves ~lr * its RMS per step
  double fine_tune_val_fraction = 0.125;  // sequences held out for keep-best (at least one)
  int64_t fine_tune_batch = 0;           // training sequences per step; <= 0: all
  // false: the norm gains are not tuned (only codebooks and scales), for writers that copy 1-D
  // tensors from the input file (the `lowbit quantize` GGUF writer does, see quantize_command.cc).
  bool fine_tune_norms = true;
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
  // A fine-tuning report (one per fine-tuned block, after its seven tensor reports; tensor is
  // "blk.<l> fine-tune"): block-output MSE on the validation / training sequences before and
  // after (the kept point), and the step kept (0: none improved, the block is unchanged).
  bool fine_tune = false;
  double fine_tune_val_before = 0.0, fine_tune_val_after = 0.0;
  double fine_tune_train_before = 0.0, fine_tune_train_after = 0.0;
  int fine_tune_best_step = 0;
  // A calibration-sampling report (--calib self, before any layer): sequences sampled so far of
  // calibration_total; -1 in every other report.
  int64_t calibration_done = -1, calibration_total = 0;
};
using AqlmProgressFn = std::function<void(const AqlmProgress&)>;

// The quantized model (owning its packed tensors, keeping `model`'s storage alive).
Result<LlamaModel> QuantizeModelAqlm(const LlamaModel& model, const AqlmOptions& options,
                                     const AqlmProgressFn& progress = nullptr);

// Self-sampled calibration sequences (step 1 above), exposed for tests and the CLI.
Result<std::vector<std::vector<int32_t>>> SampleCalibration(const LlamaModel& model,
                                                            const AqlmOptions& options,
                                                            const AqlmProgressFn& progress = nullptr);

// Calibration sequences from a tokenized text: up to n_sequences consecutive, non-overlapping
// windows of BOS + (seq_len - 1) tokens, the first starting at token skip_tokens (so a text's head
// can stay reserved for evaluation). Fewer when the text runs out; an error when not even one fits.
Result<std::vector<std::vector<int32_t>>> CutCalibrationText(std::span<const int32_t> ids, int32_t bos,
                                                             int64_t n_sequences, int64_t seq_len,
                                                             int64_t skip_tokens);

// ---- Global (end-to-end) fine-tuning (src/quant/aqlm/global_finetune.h) ----
// After QuantizeModelAqlm: the codebooks and row scales of every AQLM matrix and every norm gain
// (codes, embeddings and classifier frozen) are tuned by Adam so that the student's next-token
// distribution matches the teacher's (mean KL(teacher || student) over the calibration tokens,
// full vocabulary), keeping the best point on held-out sequences.
struct AqlmGlobalFineTuneOptions {
  int epochs = 4;                // passes over the training sequences (>= 1)
  double lr = 3e-3;              // relative: each parameter group moves ~lr * its RMS per step
  bool cosine_lr = false;        // true: lr * (1 + cos(pi * (step - 1) / steps)) / 2 (decays to ~0)
  int64_t batch_sequences = 8;   // training sequences per Adam step (>= 1)
  double val_fraction = 0.125;   // share of sequences held out for keep-best (at least one)
  bool tune_norms = true;        // false: only codebooks and scales move
  // > 0: after every epoch a discrete code step (PV-tuning's linearized V step,
  // src/quant/aqlm/code_step.h) may change this share of each matrix's groups, moving them
  // towards W - eta * (the epoch's summed gradient), eta = code_step * rms(W) / rms(gradient).
  double code_fraction = 0.0;
  double code_step = 0.05;
  bool code_sign = false;  // true: the target moves by eta * rms(gradient) * sign(gradient) per weight
  int n_threads = 2;
};

struct AqlmGlobalFineTuneProgress {
  enum class Stage { kTeacher, kValidation, kStep };
  Stage stage = Stage::kStep;
  int epoch = 0, epochs = 0;   // kValidation: epoch 0 is the untrained model
  int64_t step = 0, steps = 0;  // kStep: steps done / in all; kTeacher: layers done / in all
  double kl = 0.0;             // kStep: the batch's training KL (before the step); kValidation: held-out KL
  bool best = false;           // kValidation: the best point so far
  int64_t codes_changed = 0;   // kValidation: groups whose codes the epoch's code step changed
  double elapsed_seconds = 0.0, eta_seconds = 0.0;
};
using AqlmGlobalFineTuneProgressFn = std::function<void(const AqlmGlobalFineTuneProgress&)>;

struct AqlmGlobalFineTuneResult {
  double val_before = 0.0, val_after = 0.0;  // held-out KL: untrained, kept point
  int best_epoch = 0;                         // 0: nothing improved, the student is unchanged
  int64_t n_train = 0, n_val = 0;             // sequences in each split
  int64_t steps = 0;
  int64_t codes_changed = 0;  // groups changed by all code steps (code_fraction > 0)
};

// student: every block's seven matrices are aqlm tensors (a file QuantizeModelAqlm wrote);
// teacher: the same architecture (the model it was quantized from). sequences: >= 2 token
// sequences of one length >= 2. Updates *student in place (new packed tensors it owns, tuned norm
// gains). Errors (named): mismatched models, a matrix that is not aqlm, bad sequences or options.
Result<AqlmGlobalFineTuneResult> FineTuneAqlmGlobal(const LlamaModel& teacher, LlamaModel* student,
                                                    const std::vector<std::vector<int32_t>>& sequences,
                                                    const AqlmGlobalFineTuneOptions& options,
                                                    const AqlmGlobalFineTuneProgressFn& progress = nullptr);

}  // namespace lowbit
