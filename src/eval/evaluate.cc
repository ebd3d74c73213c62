// The evaluation driver: llama-perplexity's chunking and scoring, plus KL divergence against a live
// reference model or a reference logits file.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "lowbit/eval.h"

namespace lowbit {
namespace {

int32_t Argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Status CheckReferenceFile(const LogitsFileReader& ref, std::span<const int32_t> tokens,
                          const LogitsFileHeader& want) {
  const LogitsFileHeader& h = ref.header();
  auto mismatch = [](const std::string& what, int64_t file_value, int64_t run_value) {
    return InvalidArgument("reference logits: " + what + " is " + std::to_string(file_value) +
                           " in the file but " + std::to_string(run_value) + " in this run");
  };
  if (h.n_vocab != want.n_vocab) return mismatch("the vocabulary size", h.n_vocab, want.n_vocab);
  if (h.ctx != want.ctx) return mismatch("ctx", h.ctx, want.ctx);
  if (h.first_scored != want.first_scored) {
    return mismatch("the first scored position (all-tokens mode differs?)", h.first_scored,
                    want.first_scored);
  }
  if (h.n_chunks < want.n_chunks)
    return mismatch("the number of chunks", h.n_chunks, want.n_chunks);
  if (h.bos_replaced != want.bos_replaced || (h.bos_replaced && h.bos != want.bos)) {
    return InvalidArgument("reference logits: BOS handling differs (file: replaced " +
                           std::to_string(h.bos_replaced) + ", bos " + std::to_string(h.bos) +
                           "; this run: replaced " + std::to_string(want.bos_replaced) + ", bos " +
                           std::to_string(want.bos) + ")");
  }
  const std::span<const int32_t> file_tokens = ref.tokens();
  for (int64_t i = 0; i < want.n_chunks * want.ctx; ++i) {
    if (file_tokens[i] != tokens[i]) {
      return InvalidArgument("reference logits: token " + std::to_string(i) + " is " +
                             std::to_string(file_tokens[i]) + " in the file but " +
                             std::to_string(tokens[i]) + " here (different text or tokenizer)");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<EvalResult> Evaluate(LlamaSession& session, std::span<const int32_t> tokens,
                            const EvalOptions& options, LlamaSession* reference_session,
                            const LogitsFileReader* reference_file) {
  LOWBIT_CHECK(reference_session == nullptr || reference_file == nullptr);
  const int64_t ctx = options.ctx;
  const int64_t vocab = session.model().config.vocab_size;
  if (ctx < 2) return InvalidArgument("eval: ctx = " + std::to_string(ctx) + ", expected >= 2");
  if (ctx > session.max_tokens()) {
    return InvalidArgument("eval: ctx = " + std::to_string(ctx) + " exceeds the session's " +
                           std::to_string(session.max_tokens()) + " tokens");
  }
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / ctx;
  if (options.max_chunks >= 0) n_chunks = std::min(n_chunks, options.max_chunks);
  if (n_chunks <= 0) {
    return InvalidArgument("eval: the text has " + std::to_string(tokens.size()) +
                           " tokens, fewer than one chunk of ctx = " + std::to_string(ctx));
  }
  LogitsFileHeader header;
  header.n_vocab = vocab;
  header.ctx = ctx;
  header.n_chunks = n_chunks;
  header.first_scored = options.all_tokens ? 0 : ctx / 2;
  header.top_k = options.save_top_k;
  header.bos_replaced = options.replace_bos && options.bos >= 0;
  header.bos = options.bos;
  const int64_t first = header.first_scored;
  const int64_t n_scored = header.scored_per_chunk();

  if (reference_session != nullptr) {
    if (reference_session->model().config.vocab_size != vocab) {
      return InvalidArgument("eval: the reference model's vocabulary (" +
                             std::to_string(reference_session->model().config.vocab_size) +
                             ") differs from the model's (" + std::to_string(vocab) + ")");
    }
    if (ctx > reference_session->max_tokens()) {
      return InvalidArgument("eval: ctx exceeds the reference session's context");
    }
  }
  if (reference_file != nullptr) {
    LOWBIT_RETURN_IF_ERROR(CheckReferenceFile(*reference_file, tokens, header));
  }
  std::unique_ptr<LogitsFileWriter> writer;
  if (!options.save_logits_path.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(writer, LogitsFileWriter::Create(options.save_logits_path, header,
                                                             tokens.first(n_chunks * ctx)));
  }

  const auto start = std::chrono::steady_clock::now();
  const bool has_ref = reference_session != nullptr || reference_file != nullptr;
  std::vector<double> nll_q, nll_ref, kld;
  std::vector<uint8_t> same_top1;
  std::vector<float> logits, ref_logits;
  std::vector<float> q_logprobs(static_cast<size_t>(vocab)),
      ref_logprobs(static_cast<size_t>(vocab));
  std::vector<int32_t> input(static_cast<size_t>(ctx - 1));
  LogitsFileReader::Record record;
  EvalResult result;
  for (int64_t c = 0; c < n_chunks; ++c) {
    // The last token of a chunk is only a target, so ctx - 1 tokens are fed.
    std::copy_n(tokens.begin() + c * ctx, ctx - 1, input.begin());
    if (header.bos_replaced) input[0] = options.bos;
    session.Reset();
    LOWBIT_RETURN_IF_ERROR(session.Forward(input, first, &logits));  // (n_scored, vocab)
    result.tokens_processed += ctx - 1;
    if (reference_session != nullptr) {
      reference_session->Reset();
      LOWBIT_RETURN_IF_ERROR(reference_session->Forward(input, first, &ref_logits));
    }
    for (int64_t i = 0; i < n_scored; ++i) {
      const int32_t target = tokens[c * ctx + first + i + 1];
      const float* row = &logits[size_t(i * vocab)];
      const double lse = LogSoftmax(row, vocab, q_logprobs.data());
      nll_q.push_back(lse - static_cast<double>(row[target]));
      if (writer != nullptr) LOWBIT_RETURN_IF_ERROR(writer->Append(q_logprobs.data(), target));
      if (!has_ref) continue;
      const int32_t q_top = Argmax(row, vocab);
      if (reference_session != nullptr) {
        const float* ref_row = &ref_logits[size_t(i * vocab)];
        const double ref_lse = LogSoftmax(ref_row, vocab, ref_logprobs.data());
        nll_ref.push_back(ref_lse - static_cast<double>(ref_row[target]));
        kld.push_back(KlDivergence(ref_logprobs.data(), q_logprobs.data(), vocab));
        same_top1.push_back(Argmax(ref_row, vocab) == q_top);
      } else {
        reference_file->Read(c, i, &record);
        nll_ref.push_back(-static_cast<double>(record.target_logprob));
        kld.push_back(record.ids.empty()
                          ? KlDivergence(record.logprobs.data(), q_logprobs.data(), vocab)
                          : KlDivergenceTopK(record.ids, record.logprobs, q_logprobs.data()));
        same_top1.push_back(record.argmax == q_top);
      }
    }
    if (options.progress) {
      options.progress(c + 1, n_chunks, static_cast<int64_t>(nll_q.size()),
                       SummarizeNll(nll_q).ppl);
    }
  }
  if (writer != nullptr) LOWBIT_RETURN_IF_ERROR(writer->Commit());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.n_chunks = n_chunks;
  result.ctx = ctx;
  result.perplexity = SummarizeNll(nll_q);
  if (has_ref) {
    result.has_reference = true;
    result.reference_perplexity = SummarizeNll(nll_ref);
    result.kld = SummarizeKld(kld, same_top1, nll_q, nll_ref);
  }
  return result;
}

}  // namespace lowbit
