// llama2.c legacy checkpoint loader (karpathy/llama2.c run.c, "version 0" export).
//
// Layout (all little-endian):
//   header: 7 x int32 = dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//           (vocab_size < 0 means the classifier is stored separately at the end: untied)
//   then f32 tensors, in this order (head_size = dim / n_heads):
//     token_embedding (vocab, dim)
//     rms_att         (n_layers, dim)
//     wq              (n_layers, n_heads * head_size, dim)
//     wk              (n_layers, n_kv_heads * head_size, dim)
//     wv              (n_layers, n_kv_heads * head_size, dim)
//     wo              (n_layers, dim, n_heads * head_size)
//     rms_ffn         (n_layers, dim)
//     w1 = gate       (n_layers, hidden_dim, dim)
//     w2 = down       (n_layers, dim, hidden_dim)
//     w3 = up         (n_layers, hidden_dim, dim)
//     rms_final       (dim)
//     freq_cis_real   (seq_len, head_size / 2)   unused: RoPE is recomputed
//     freq_cis_imag   (seq_len, head_size / 2)   unused
//     wcls            (vocab, dim)               only when vocab_size < 0
// RoPE uses adjacent pairs with theta 10000; RMSNorm eps 1e-5 (run.c's constants).
#include <cstring>
#include <memory>
#include <vector>

#include "io/file_io.h"
#include "lowbit/model.h"
#include "runtime/assemble_weights.h"

namespace lowbit {

namespace {

// Parses a llama2.c checkpoint of `size` bytes at `data`; `storage` keeps those bytes alive for the
// returned model's views. One code path for files (mapped) and bytes in memory (tests, fuzzing).
Result<LlamaModel> ParseLlama2c(const std::string& path, std::shared_ptr<const void> storage,
                                const uint8_t* data, uint64_t size) {
  constexpr uint64_t kHeaderBytes = 28;
  if (size < kHeaderBytes) {
    return DataLoss(path + ": " + std::to_string(size) +
                    " bytes, too short for the 28-byte llama2.c header");
  }
  int32_t h[7];
  std::memcpy(h, data, sizeof(h));
  const char* kNames[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                           "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (h[i] == 0 || (i != 5 && h[i] < 0) || h[i] > (1 << 24) || h[i] < -(1 << 24)) {
      return DataLoss(path + ": llama2.c header field " + kNames[i] + " = " + std::to_string(h[i]) +
                      " is not a plausible size");
    }
  }
  LlamaModel m;
  LlamaConfig& c = m.config;
  c.architecture = "llama";
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : -static_cast<int64_t>(h[5]);
  c.context_length = h[6];
  if (c.dim % c.n_heads != 0) {
    return DataLoss(path + ": llama2.c header dim = " + std::to_string(c.dim) +
                    " is not a multiple of n_heads = " + std::to_string(c.n_heads));
  }
  c.head_dim = c.dim / c.n_heads;
  c.rope_dim = c.head_dim;
  c.rope_theta = 10000.0;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.rms_eps = 1e-5f;
  if (Status st = c.Validate(); !st.ok()) return DataLoss(path + ": " + st.message());

  const int64_t L = c.n_layers, dim = c.dim, hs = c.head_dim;
  const int64_t q_dim = c.n_heads * hs, kv_dim = c.n_kv_heads * hs, hidden = c.hidden_dim;
  // The header fields are each < 2^24, so products of three (e.g. n_layers * hidden_dim * dim)
  // overflow int64: sum the tensor sizes with overflow checks, in unsigned 128-bit arithmetic.
  using U128 = unsigned __int128;
  const U128 expected_floats =
      U128(c.vocab_size) * dim + U128(L) * dim + U128(L) * q_dim * dim +
      2 * U128(L) * kv_dim * dim + U128(L) * dim * q_dim + U128(L) * dim +
      3 * U128(L) * hidden * dim + dim + U128(c.context_length) * hs +
      (c.tied_embeddings ? 0 : U128(c.vocab_size) * dim);
  const U128 expected_bytes = kHeaderBytes + 4 * expected_floats;
  if (U128(size) != expected_bytes) {
    const bool huge = expected_bytes > U128(UINT64_MAX);
    return DataLoss(path + ": " + std::to_string(size) + " bytes, but the llama2.c header (" +
                    c.ToString() + ", seq_len " + std::to_string(c.context_length) +
                    ") implies " +
                    (huge ? std::string("more than 2^64")
                          : std::to_string(static_cast<uint64_t>(expected_bytes))));
  }

  // Walks the tensors in file order; every offset is 28 + 4k, so f32 data is 4-byte aligned.
  const uint8_t* cursor = data + kHeaderBytes;
  auto take = [&](int64_t n_floats) {
    const uint8_t* p = cursor;
    cursor += 4 * n_floats;
    return p;
  };
  auto matrix = [](std::string name, const uint8_t* p, int64_t rows, int64_t cols) {
    WeightView w;
    w.name = std::move(name);
    w.data = p;
    w.rows = rows;
    w.cols = cols;
    return w;
  };
  auto vec = [](const uint8_t* p, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), p, 4 * static_cast<size_t>(n));
    return v;
  };
  m.layers.resize(static_cast<size_t>(L));
  m.token_embedding = matrix("token_embedding", take(c.vocab_size * dim), c.vocab_size, dim);
  auto per_layer = [&](auto fn, int64_t n_floats) {
    const uint8_t* base = take(L * n_floats);
    for (int64_t l = 0; l < L; ++l) fn(m.layers[size_t(l)], l, base + 4 * l * n_floats);
  };
  auto name = [](const char* what, int64_t l) {
    return std::string(what) + "[" + std::to_string(l) + "]";
  };
  per_layer([&](LayerWeights& w, int64_t, const uint8_t* p) { w.attn_norm = vec(p, dim); }, dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.wq = matrix(name("wq", l), p, q_dim, dim); },
            q_dim * dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.wk = matrix(name("wk", l), p, kv_dim, dim); },
            kv_dim * dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.wv = matrix(name("wv", l), p, kv_dim, dim); },
            kv_dim * dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.wo = matrix(name("wo", l), p, dim, q_dim); },
            dim * q_dim);
  per_layer([&](LayerWeights& w, int64_t, const uint8_t* p) { w.ffn_norm = vec(p, dim); }, dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.w_gate = matrix(name("w1", l), p, hidden, dim); },
            hidden * dim);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.w_down = matrix(name("w2", l), p, dim, hidden); },
            dim * hidden);
  per_layer([&](LayerWeights& w, int64_t l,
                const uint8_t* p) { w.w_up = matrix(name("w3", l), p, hidden, dim); },
            hidden * dim);
  m.output_norm = vec(take(dim), dim);
  take(c.context_length * hs);  // freq_cis_real, freq_cis_imag: (seq_len, head_size / 2) each
  m.output = c.tied_embeddings ? m.token_embedding
                               : matrix("wcls", take(c.vocab_size * dim), c.vocab_size, dim);
  LOWBIT_CHECK(cursor == data + size);
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& w = m.layers[size_t(l)];
    LOWBIT_RETURN_IF_ERROR(CheckFiniteVector(path, name("rms_att", l), w.attn_norm));
    LOWBIT_RETURN_IF_ERROR(CheckFiniteVector(path, name("rms_ffn", l), w.ffn_norm));
  }
  LOWBIT_RETURN_IF_ERROR(CheckFiniteVector(path, "rms_final", m.output_norm));
  m.source = path;
  m.source_kind = "llama2c";
  m.storage = std::move(storage);
  return m;
}

}  // namespace

Result<LlamaModel> LoadLlama2c(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<const io::MappedFile> file, io::MappedFile::Open(path));
  const uint8_t* data = file->data();
  const uint64_t size = file->size();
  return ParseLlama2c(path, std::move(file), data, size);
}

Result<LlamaModel> LoadLlama2cFromBytes(std::vector<uint8_t> bytes, std::string name) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  const uint8_t* data = owned->data();
  const uint64_t size = owned->size();
  return ParseLlama2c(name, std::move(owned), data, size);
}

}  // namespace lowbit
