// Helpers for tests that run a model.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

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

}  // namespace lowbit::testing
