// Model evaluation: perplexity the way llama.cpp's llama-perplexity computes it, and the KL
// divergence of a model Q against a reference model on the same tokens (docs/eval.md).
//
// Perplexity protocol (llama.cpp tools/perplexity, perplexity()):
//   - the whole text is tokenized once (with BOS in front when the tokenizer adds one);
//   - it is cut into n_chunks = min(max_chunks, n_tokens / ctx) non-overlapping chunks of ctx
//     tokens (the tail that does not fill a chunk is dropped);
//   - the first token of every chunk is replaced by BOS (when the model uses BOS), and each chunk
//   is
//     evaluated from an empty KV cache;
//   - only the second half is scored: positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1,
//     i.e. ctx - 1 - ctx/2 tokens per chunk (all_tokens: positions 0 .. ctx-2, ctx - 1 tokens);
//   - PPL = exp(mean NLL) and its standard error by the delta method,
//     ppl_stderr = PPL * sqrt((E[nll^2] - E[nll]^2) / (n - 1)).
// KL divergence per scored token: KL(P_ref || P_q) = sum_i p_ref(i) (log p_ref(i) - log p_q(i)).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/model.h"
#include "lowbit/status.h"

namespace lowbit {

// ---- Arithmetic (exposed for tests) ----

// out: (n) = logits - logsumexp(logits), computed in double, stored as f32. Returns logsumexp.
double LogSoftmax(const float* logits, int64_t n, float* out);

// -log softmax(logits)[target], in double.
double TokenNll(const float* logits, int64_t n, int32_t target);

// KL(P || Q) = sum_i exp(p[i]) * (p[i] - q[i]) for log-probabilities p, q of length n (double sum).
double KlDivergence(const float* ref_logprobs, const float* q_logprobs, int64_t n);

// KL when only the reference's top-k log-probabilities are known (ids[k], ref_logprobs[k]): the
// other entries are merged into one "rest" bucket on both sides,
//   sum_{i in top-k} p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest),
// which by the log-sum inequality is a lower bound of the full KL (equal when the tail of Q is
// proportional to the tail of P). A reference rest mass below 1e-6 (f32 rounding noise of the sum)
// counts as none.
double KlDivergenceTopK(std::span<const int32_t> ids, std::span<const float> ref_logprobs,
                        const float* q_logprobs);

// Percentile of values (p in [0, 1]) with linear interpolation between closest ranks:
// sorted[floor(h)] + (h - floor(h)) * (sorted[floor(h)+1] - sorted[floor(h)]), h = p * (n - 1).
double Percentile(std::vector<double> values, double p);

struct PerplexityStats {
  int64_t count = 0;
  double mean_nll = 0.0;
  double ppl = 0.0;
  double ppl_stderr = 0.0;  // 0 when count < 2
};
PerplexityStats SummarizeNll(std::span<const double> nll);

struct KldStats {
  int64_t count = 0;
  double mean = 0.0;
  double stderr_mean = 0.0;  // sqrt(var / (n - 1)), var the population variance
  double median = 0.0;
  double p99 = 0.0;
  double max = 0.0;
  double top1_agreement = 0.0;  // fraction of tokens where argmax Q == argmax reference
  double ppl_ratio = 0.0;       // PPL(Q) / PPL(ref) = exp(mean(nll_q - nll_ref))
};
// kld, same_top1, nll_q, nll_ref: one entry per scored token.
KldStats SummarizeKld(std::span<const double> kld, std::span<const uint8_t> same_top1,
                      std::span<const double> nll_q, std::span<const double> nll_ref);

// ---- Reference logits file ----
//
// Layout (little-endian; docs/eval.md), written atomically (temporary file + rename):
//   char[8]  magic "LBLOGIT1"
//   int64    n_vocab, ctx, n_chunks, first_scored (ctx/2, or 0 with all_tokens), top_k (0: full)
//   int32    bos_replaced (1 when each chunk's first token was replaced by BOS), bos id
//   int32    tokens[n_chunks * ctx]      the evaluated tokens as tokenized (before BOS replacement)
//   then per chunk, per scored position (ctx - 1 - first_scored of them), one record:
//     f32    log-prob of the actual next token (exact: PPL of the reference is exact)
//     int32  argmax id (exact: top-1 agreement is exact)
//     top_k == 0: uint16 log-softmax[n_vocab] as IEEE fp16 (round to nearest even)
//     top_k  > 0: top_k x (int32 id, f32 log-prob), by decreasing probability
struct LogitsFileHeader {
  int64_t n_vocab = 0;
  int64_t ctx = 0;
  int64_t n_chunks = 0;
  int64_t first_scored = 0;
  int64_t top_k = 0;
  bool bos_replaced = false;
  int32_t bos = -1;
  int64_t scored_per_chunk() const { return ctx - 1 - first_scored; }
  int64_t RecordBytes() const;
};

class LogitsFileWriter {
 public:
  // Starts the temporary file; tokens: (n_chunks * ctx).
  static Result<std::unique_ptr<LogitsFileWriter>> Create(const std::string& path,
                                                          const LogitsFileHeader& header,
                                                          std::span<const int32_t> tokens);
  ~LogitsFileWriter();
  // Appends the next record. logprobs: (n_vocab) log-softmax of the reference.
  Status Append(const float* logprobs, int32_t target);
  // Checks every record was written, then renames the file into place.
  Status Commit();

 private:
  LogitsFileWriter();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class LogitsFileReader {
 public:
  static Result<std::unique_ptr<LogitsFileReader>> Open(const std::string& path);
  ~LogitsFileReader();
  const LogitsFileHeader& header() const;
  std::span<const int32_t> tokens() const;  // (n_chunks * ctx)

  struct Record {
    float target_logprob = 0.0f;
    int32_t argmax = 0;
    std::vector<float> logprobs;  // full files: (n_vocab), renormalised after fp16 decoding
    std::vector<int32_t> ids;     // top-k files: (top_k) ids with their log-probs in logprobs
  };
  // Record `index` within chunk `chunk` (index < scored_per_chunk()).
  void Read(int64_t chunk, int64_t index, Record* record) const;

 private:
  LogitsFileReader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Evaluation driver ----

struct EvalOptions {
  int64_t ctx = 512;
  int64_t max_chunks = -1;  // < 0: every full chunk
  bool all_tokens = false;  // score positions 0 .. ctx-2 instead of ctx/2 .. ctx-2
  bool replace_bos = true;  // replace each chunk's first token by bos (when bos >= 0)
  int32_t bos = -1;
  int64_t save_top_k = 0;        // for save_logits_path: 0 = full fp16 log-softmax
  std::string save_logits_path;  // write this model's log-probs as a reference file
  // Called after every chunk: (chunks done, total chunks, tokens scored so far, running PPL).
  std::function<void(int64_t, int64_t, int64_t, double)> progress;
};

struct EvalResult {
  int64_t n_chunks = 0;
  int64_t ctx = 0;
  PerplexityStats perplexity;
  bool has_reference = false;
  PerplexityStats reference_perplexity;
  KldStats kld;
  double seconds = 0.0;          // forward passes + scoring, this model (and a live reference)
  int64_t tokens_processed = 0;  // tokens fed through the model under test
};

// Evaluates `session`'s model on tokens. The reference, if any, is either a live model
// (reference_session) or a file (reference_file), not both; its tokens, ctx, chunk count and
// scored positions must match. session (and reference_session) need max_tokens() >= ctx.
Result<EvalResult> Evaluate(LlamaSession& session, std::span<const int32_t> tokens,
                            const EvalOptions& options, LlamaSession* reference_session = nullptr,
                            const LogitsFileReader* reference_file = nullptr);

}  // namespace lowbit
