// Helpers for tests that run a model.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/eval.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit::testing {

// The whole of ../shared/data/text/tinystories_valid_head.txt (the calibration and held-out text
// of the stories260K tests).
inline std::string ReadStoriesText() {
  std::ifstream in(SharedDataPath("text/tinystories_valid_head.txt"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// n sequences of len tokens, BOS first, from the 40,000 characters of text starting at `from`
// (calibration and evaluation use disjoint parts of the file); fewer if that text runs out.
inline std::vector<std::vector<int32_t>> TokenSequences(const Tokenizer& tok, const std::string& text,
                                                        size_t from, int n, int len) {
  std::vector<int32_t> ids = tok.Encode(text.substr(from, 40000), true);
  std::vector<std::vector<int32_t>> out;
  for (int s = 0; s < n && static_cast<size_t>((s + 1) * len) <= ids.size(); ++s) {
    out.emplace_back(ids.begin() + s * len, ids.begin() + (s + 1) * len);
  }
  return out;
}

// Logits (ids.size(), vocab) of one forward pass over ids from position 0.
inline std::vector<float> ForwardLogits(const LlamaModel& model, const std::vector<int32_t>& ids) {
  SessionOptions options;
  options.max_tokens = static_cast<int64_t>(ids.size());
  LlamaSession session(model, options);
  std::vector<float> logits;
  EXPECT_TRUE(session.Forward(ids, 0, &logits).ok());
  return logits;
}

// Mean KL divergence of q against ref over tokens in chunks of ctx (BOS 1, one thread); 1e9 if the
// evaluation fails (the test then also fails).
inline double MeanKldVs(const LlamaModel& ref, const LlamaModel& q, const std::vector<int32_t>& tokens,
                        int64_t ctx) {
  SessionOptions so;
  so.n_threads = 1;
  so.max_tokens = ctx;
  LlamaSession rs(ref, so), qs(q, so);
  EvalOptions eo;
  eo.ctx = ctx;
  eo.bos = 1;
  auto r = Evaluate(qs, tokens, eo, &rs);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->kld.mean : 1e9;
}

}  // namespace lowbit::testing
