// One transformer block of a Llama-family model applied to whole calibration sequences, for AQLM
// calibration: the residual stream entering block l is kept for every calibration token, so each
// block runs once per layer (not the whole prefix of the model again).
//
// The block LlamaSession::Forward (src/runtime/model.cc) runs for a sequence starting at position
// 0, without activation quantization; the linears go through the dense f32 kernel on the decoded
// matrix (block_forward.cc), so outputs equal the runtime's up to f32 summation order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "lowbit/model.h"

namespace lowbit {
class ThreadPool;
namespace aqlm {

// Which linear input an observer sees.
enum class BlockInput { kAttnIn, kAttnOut, kFfnIn, kFfnOut };
// x: (n_tokens, cols) the input of the linears of that kind.
using BlockInputFn = std::function<void(BlockInput kind, const float* x, int64_t n_tokens, int64_t cols)>;

// The block's intermediate buffers, which a caller running many blocks can keep: for 65,536
// calibration tokens they are 1.4 GB, and fresh ones cost page faults and zeroing on every call.
struct BlockForwardBuffers {
  std::vector<float> xb, q, k, v, att, gate, up;
};

// x: (n_seq * seq_len, dim) residual stream entering the block, updated in place to the stream
// leaving it. Sequences are independent, each at positions 0 .. seq_len - 1. buffers non-null:
// used (and kept) instead of fresh ones; the result does not depend on them.
void BlockForward(const LlamaConfig& c, const LayerWeights& w, const std::vector<double>& rope_freqs,
                  int64_t n_seq, int64_t seq_len, float* x, ThreadPool& pool,
                  const BlockInputFn& observe = nullptr, BlockForwardBuffers* buffers = nullptr);

}  // namespace aqlm
}  // namespace lowbit
