// Forward and backward pass of one Llama-family transformer block with dense weights, over whole
// calibration sequences, for AQLM block fine-tuning (block_finetune.h).
//
// The block is the one BlockForward (block_forward.h) and LlamaSession::Forward run, for n_seq
// independent sequences of seq_len tokens each at positions 0 .. seq_len - 1:
//   a    = RmsNorm(x) * attn_norm                             x, a: (n, dim), n = n_seq * seq_len
//   q    = rope(a Wq^T + bq)   k = rope(a Wk^T + bk)   v = a Wv^T + bv   (biases only for qkv_bias)
//   att  = causal GQA softmax(q k^T / sqrt(head_dim)) v       per sequence and query head
//   h    = x + att Wo^T
//   b    = RmsNorm(h) * ffn_norm
//   y    = h + (silu(b Wgate^T) * (b Wup^T)) Wdown^T
// and the loss against a target (n, dim):
//   L = sum (y - target)^2 / (n * dim)                          (mean squared error)
// Backward gives dL/dW for the seven matrices and dL/d(attn_norm), dL/d(ffn_norm); biases and the
// rotary tables are constants. BlockBackward takes dL/dy from the caller instead (global
// fine-tuning chains the blocks) and also returns dL/dx.
//
// Precision: T = float (fine-tuning) or double (gradient checks in tests). The matrix products
// (over the feature axis, dW's sum over tokens, and attention's q k^T, P v and their gradients per
// (sequence, head)) are one fma chain in T per element (kernels/dense.h); the other sums (norm
// gradients, the loss, softmax denominators, RmsNorm's mean of squares) accumulate in double.
// Threads: every parallel task writes its own slice (token blocks, row blocks, one (sequence,
// kv head) of attention), and reductions run in a fixed order, so the results are bit-identical
// for any thread count. Attention probabilities are recomputed in the backward pass instead of
// stored (memory O(n * width) plus seq_len^2 per thread, not O(n * seq_len * heads)).
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/model.h"

namespace lowbit {
class ThreadPool;
namespace aqlm {

// The seven matrices of a block, in this order everywhere in src/quant/aqlm:
// wq, wk, wv, wo, w_gate, w_up, w_down.
constexpr int kBlockMatrices = 7;
// Matrix i (the order above) of a layer; L: LayerWeights or const LayerWeights.
template <class L>
auto* BlockMatrix(L& layer, int i) {
  decltype(&layer.wq) v[kBlockMatrices] = {&layer.wq, &layer.wk,     &layer.wv,    &layer.wo,
                                           &layer.w_gate, &layer.w_up, &layer.w_down};
  return v[i];
}
// (rows, cols) of matrix i of a block of config c.
void BlockMatrixShape(const LlamaConfig& c, int i, int64_t* rows, int64_t* cols);

template <class T>
struct DenseBlock {
  const T* w[kBlockMatrices] = {};  // row-major (rows, cols) as BlockMatrixShape
  // Optional (null: made when needed): w transposed, (cols, rows), for the forward products.
  const T* w_t[kBlockMatrices] = {};
  const T* attn_norm = nullptr;     // (dim)
  const T* ffn_norm = nullptr;      // (dim)
  const float* bq = nullptr;        // (n_heads * head_dim), read only when c.qkv_bias
  const float* bk = nullptr;        // (n_kv_heads * head_dim), read only when c.qkv_bias
  const float* bv = nullptr;        // (n_kv_heads * head_dim), read only when c.qkv_bias
};

// out (cols, rows) = in (rows, cols) transposed, row blocks in parallel.
template <class T>
void TransposeMatrix(const T* in, int64_t rows, int64_t cols, T* out, ThreadPool& pool);

// y (n, rows) = a (n, depth) b (depth, rows) by the dense kernel (kernels/dense.h), blocks of
// tokens (kernels::RowsPerTask) in parallel: every output one fma chain over depth in order,
// whatever the thread count.
template <class T>
void MatMulTokens(const T* a, const T* b, int64_t n, int64_t depth, int64_t rows, T* y, ThreadPool& pool);

template <class T>
struct BlockGradients {
  std::vector<T> w[kBlockMatrices];  // dL/dW, shapes as the matrices
  std::vector<T> attn_norm;          // (dim)
  std::vector<T> ffn_norm;           // (dim)
};

// What a block's backward pass needs from its forward pass (every intermediate, per token).
// About 9,600 values per token for SmolLM2-135M: 79 MB per block for a batch of 2,048 tokens.
template <class T>
struct BlockActivations {
  int64_t n_seq = 0, seq_len = 0;
  std::vector<float> cos_sin;  // (seq_len, rope_dim)
  std::vector<double> r1, r2;  // inverse RMS of the two norms' inputs, per token
  std::vector<T> xn1, a, q, k, v, att, h1, xn2, b, gate, up, s;
  std::vector<T> y;            // the block's output
};

// x, target: (n_seq * seq_len, dim). Returns L (above). grads non-null: filled (resized) with the
// gradients. out non-null: receives y (n_seq * seq_len, dim).
template <class T>
double BlockLoss(const LlamaConfig& c, const DenseBlock<T>& block,
                 const std::vector<double>& rope_freqs, int64_t n_seq, int64_t seq_len,
                 const float* x, const float* target, ThreadPool& pool,
                 BlockGradients<T>* grads = nullptr, std::vector<T>* out = nullptr);

// The forward pass only: x (n_seq * seq_len, dim) is replaced by the block's output. st: the
// block's buffers, which a caller running many blocks keeps (fresh ones cost page faults); the
// result does not depend on what they held.
template <class T>
void BlockApply(const LlamaConfig& c, const DenseBlock<T>& block, const std::vector<double>& rope_freqs,
                int64_t n_seq, int64_t seq_len, T* x, ThreadPool& pool, BlockActivations<T>* st);

// x, dy: (n_seq * seq_len, dim). Runs the forward pass from x, then the backward pass from dy:
// fills *grads (non-null, resized) and, when dx is non-null, dL/dx (n_seq * seq_len, dim); out
// non-null: receives y.
template <class T>
void BlockBackward(const LlamaConfig& c, const DenseBlock<T>& block,
                   const std::vector<double>& rope_freqs, int64_t n_seq, int64_t seq_len,
                   const T* x, const T* dy, ThreadPool& pool, BlockGradients<T>* grads,
                   std::vector<T>* dx, std::vector<T>* out = nullptr);

// The forward pass keeping what the backward pass needs: st->y is the output. With
// BlockBackwardFrom, a caller that runs every block forward first (global fine-tuning) skips the
// second forward pass BlockBackward would run; the results are the same bits.
template <class T>
void BlockForwardKeep(const LlamaConfig& c, const DenseBlock<T>& block, const std::vector<double>& rope_freqs,
                      int64_t n_seq, int64_t seq_len, const T* x, ThreadPool& pool, BlockActivations<T>* st);

// The backward pass from kept activations st (consumed: their buffers are reused) and dy (n, dim;
// consumed too): fills *grads and, when dx is non-null, dL/dx.
template <class T>
void BlockBackwardFrom(const LlamaConfig& c, const DenseBlock<T>& block, BlockActivations<T>& st,
                       std::vector<T>& dy, ThreadPool& pool, BlockGradients<T>* grads, std::vector<T>* dx);

extern template void BlockForwardKeep<float>(const LlamaConfig&, const DenseBlock<float>&,
                                             const std::vector<double>&, int64_t, int64_t, const float*,
                                             ThreadPool&, BlockActivations<float>*);
extern template void BlockBackwardFrom<float>(const LlamaConfig&, const DenseBlock<float>&,
                                              BlockActivations<float>&, std::vector<float>&, ThreadPool&,
                                              BlockGradients<float>*, std::vector<float>*);
extern template void BlockForwardKeep<double>(const LlamaConfig&, const DenseBlock<double>&,
                                              const std::vector<double>&, int64_t, int64_t, const double*,
                                              ThreadPool&, BlockActivations<double>*);
extern template void BlockBackwardFrom<double>(const LlamaConfig&, const DenseBlock<double>&,
                                               BlockActivations<double>&, std::vector<double>&, ThreadPool&,
                                               BlockGradients<double>*, std::vector<double>*);
extern template double BlockLoss<float>(const LlamaConfig&, const DenseBlock<float>&,
                                        const std::vector<double>&, int64_t, int64_t, const float*,
                                        const float*, ThreadPool&, BlockGradients<float>*,
                                        std::vector<float>*);
extern template double BlockLoss<double>(const LlamaConfig&, const DenseBlock<double>&,
                                         const std::vector<double>&, int64_t, int64_t,
                                         const float*, const float*, ThreadPool&,
                                         BlockGradients<double>*, std::vector<double>*);
extern template void BlockApply<float>(const LlamaConfig&, const DenseBlock<float>&,
                                       const std::vector<double>&, int64_t, int64_t, float*, ThreadPool&,
                                       BlockActivations<float>*);
extern template void BlockApply<double>(const LlamaConfig&, const DenseBlock<double>&,
                                        const std::vector<double>&, int64_t, int64_t, double*, ThreadPool&,
                                        BlockActivations<double>*);
extern template void BlockBackward<float>(const LlamaConfig&, const DenseBlock<float>&,
                                          const std::vector<double>&, int64_t, int64_t,
                                          const float*, const float*, ThreadPool&,
                                          BlockGradients<float>*, std::vector<float>*,
                                          std::vector<float>*);
extern template void BlockBackward<double>(const LlamaConfig&, const DenseBlock<double>&,
                                           const std::vector<double>&, int64_t, int64_t,
                                           const double*, const double*, ThreadPool&,
                                           BlockGradients<double>*, std::vector<double>*,
                                           std::vector<double>*);

}  // namespace aqlm
}  // namespace lowbit
