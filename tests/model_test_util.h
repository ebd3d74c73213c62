// Helpers for tests that run a model.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "lowbit/eval.h"
#include "lowbit/model.h"

namespace lowbit::testing {

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
