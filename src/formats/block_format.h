// BlockFormat: the common shape of most formats: rows split into blocks of block_size() elements
// along the reduction dimension, each block stored in block_bytes() bytes with its own shared
// fields. A family implements EncodeBlock / DecodeBlock / BlockErrorBound for one block and gets
// the tensor-level Format API (row padding, row ranges) from here.
//
// Tail rule (all block formats): a row whose length is not a multiple of the block is padded with
// +0.0 up to the next multiple before encoding; the padding is stored and counted in bits/weight,
// and decoding drops it.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "lowbit/format.h"

namespace lowbit {

class BlockFormat : public Format {
 public:
  int64_t RowBytes(int64_t cols) const final {
    return (cols + block_size() - 1) / block_size() * block_bytes();
  }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    if (!can_quantize()) return Unimplemented("format " + spec() + " is decode-only");
    const int64_t b = block_size();
    std::vector<float> tail(static_cast<size_t>(b));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      uint8_t* dst = out + r * RowBytes(cols);
      for (int64_t c = 0; c < cols; c += b) {
        const int64_t n = std::min<int64_t>(b, cols - c);
        const float* src = row + c;
        if (n < b) {
          std::fill(tail.begin(), tail.end(), 0.0f);
          std::memcpy(tail.data(), src, static_cast<size_t>(n) * sizeof(float));
          src = tail.data();
        }
        EncodeBlock(src, dst + (c / b) * block_bytes());
      }
    }
    return Status::Ok();
  }

  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    const int64_t b = block_size();
    std::vector<float> block(static_cast<size_t>(b));
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint8_t* src = packed + r * RowBytes(cols);
      float* dst = out + (r - row_begin) * cols;
      for (int64_t c = 0; c < cols; c += b) {
        const int64_t n = std::min<int64_t>(b, cols - c);
        DecodeBlock(src + (c / b) * block_bytes(), block.data());
        std::memcpy(dst + c, block.data(), static_cast<size_t>(n) * sizeof(float));
      }
    }
  }

  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    const int64_t b = block_size();
    std::vector<float> in(static_cast<size_t>(b)), out(static_cast<size_t>(b));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; c += b) {
        const int64_t n = std::min<int64_t>(b, cols - c);
        std::fill(in.begin(), in.end(), 0.0f);
        std::memcpy(in.data(), x + r * cols + c, static_cast<size_t>(n) * sizeof(float));
        BlockErrorBound(in.data(), out.data());
        std::memcpy(bound + r * cols + c, out.data(), static_cast<size_t>(n) * sizeof(float));
      }
    }
  }

  // One block: x has block_size() floats; out has block_bytes() bytes.
  virtual void EncodeBlock(const float* x, uint8_t* out) const = 0;
  virtual void DecodeBlock(const uint8_t* in, float* out) const = 0;
  // Per-element bound on |x - decode(encode(x))| for a block of finite values.
  virtual void BlockErrorBound(const float* x, float* bound) const = 0;
};

}  // namespace lowbit
