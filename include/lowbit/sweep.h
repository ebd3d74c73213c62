// `lowbit sweep`: accuracy against bits for many formats in one run, as in the block-quantisation
// study (Zhang et al. 2023, "Revisiting Block-based Quantisation: What is Important for Sub-8-bit
// LLM Inference?"): each point quantizes the linear layers' weights (and, for WxAy points, the
// inputs of every linear layer per token) by round-to-nearest, then measures PPL, KL divergence
// and top-1 agreement against the unquantized model. See docs/sweep.md.
#pragma once

#include <string>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

struct SweepPoint {
  std::string family;   // grid family: int, minifloat, bfp, bm, bl, mxfp, mxint, fp6, nf4, gguf
  std::string label;    // "W4A8", "W6" ...
  FormatPtr weights;    // linear layers' weights
  FormatPtr acts;       // linear inputs; null: f32 (weight-only)
  int weight_width = 0;  // nominal element bits (the W of WxAy)
  int act_width = 0;     // 0 for weight-only
};

// The default grid: each family at W8A8, W6A6, W5A5, W4A4, W4A8 and weight-only W8, W6, W5, W4,
// W3, W2 where the family has that width (docs/sweep.md lists the format of every cell).
std::vector<SweepPoint> DefaultSweepGrid();

// Points from a user list: items separated by ';' or whitespace (or ',' when no item is a spec
// with parameters), each "W" (weight-only) or "W/A" with W, A a preset or spec.
Result<std::vector<SweepPoint>> ParseSweepPoints(const std::string& list);

struct SweepResult {
  SweepPoint point;
  std::string weights_name, acts_name;  // preset names (or specs)
  double ppl = 0.0, ppl_stderr = 0.0;
  double kld = 0.0, kld_stderr = 0.0;
  double top1 = 0.0;                // fraction
  double linear_bits = 0.0;         // bits per weight of the quantized linears
  double model_bits = 0.0;          // bits per weight of every matrix (embeddings as stored)
  double act_bits = 32.0;           // bits per activation element
  double memory_density = 0.0;      // 32 / linear_bits
  double act_memory_density = 1.0;  // 32 / act_bits
  double arithmetic_density = 1.0;  // estimate (docs/cost_model.md)
  double quantize_seconds = 0.0, eval_seconds = 0.0;
  bool pareto = false;  // on the frontier of its group (weight-only or WxAy)
};

// Marks the points on the lower-left frontier of (linear_bits, kld) within each group (weight-only
// points, WxAy points): no other point of the group has <= bits and a lower KLD.
void MarkParetoFrontier(std::vector<SweepResult>& results);

struct SweepContext {
  std::string model, text;
  int64_t ctx = 0, chunks = 0, scored_tokens = 0;
  double reference_ppl = 0.0;
  std::string reference_note;  // what "unquantized" means for this model
};

// Report bodies (the CLI writes them atomically).
std::string SweepMarkdown(const SweepContext& context, const std::vector<SweepResult>& results);
std::string SweepCsv(const std::vector<SweepResult>& results);
std::string SweepJson(const SweepContext& context, const std::vector<SweepResult>& results);
// KLD (log scale) against bits per weight; frontiers drawn and their points labelled.
std::string SweepSvg(const SweepContext& context, const std::vector<SweepResult>& results);

}  // namespace lowbit
