// Format: one fully parameterised number format (a codec for row-major weight tensors).
//
// Storage model shared by every format:
//   packed tensor = header (per-tensor fields, often 0 bytes) + rows * RowBytes(cols)
// Rows are independent except through the header, so a runtime can dequantize any row range (a tile)
// without touching the rest. Blocks run along a row (the reduction dimension of a linear layer); a row
// whose length is not a multiple of the block is padded with zeros up to the block, and the padding is
// counted in the bits per weight.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lowbit/status.h"

namespace lowbit {

// How tightly quantize->dequantize reproduces its input; the tests read this and the per-element
// bound from ErrorBound(), so a tolerance lives next to the format it belongs to. (Fast kernels
// must match a format's reference encode/decode bit for bit whatever its class.)
// How one element of a format enters a multiply-accumulate: the inputs of the arithmetic-density
// estimate (src/eval/cost_model.cc; the model and its assumptions are in docs/cost_model.md).
struct MacOperand {
  int significand_bits = 11;  // multiplier input width: float m + 1 (hidden bit), integer
                              // magnitude bits, 0 for logarithmic elements (a product is an add)
  int exponent_bits = 5;      // per-element exponent: the width of the exponent adder
  int64_t shared_block = 0;   // elements sharing one scale field (0: none or per row/tensor)
  int shared_bits = 0;        // width of that field when it is a power of two (an adder)
  bool shared_multiply = false;  // the shared scale is a real number (fp16): an 11x11 multiply
};

enum class ToleranceClass {
  kExact,      // lossless for every finite input (f32 storage)
  kErrorBand,  // documented per-element bound from ErrorBound()
};

class Format {
 public:
  virtual ~Format() = default;

  // Canonical spec ("family:key=value,..."); Parse(spec()) yields an equal format.
  virtual std::string spec() const = 0;
  virtual std::string_view family() const = 0;

  // Elements sharing one set of fields (scale, exponent, zero point). For per-row formats this is 0
  // (the whole row); for per-tensor formats -1.
  virtual int64_t block_size() const = 0;
  // Bytes of one block (0 when block_size() <= 0).
  virtual int64_t block_bytes() const = 0;

  virtual int64_t HeaderBytes(int64_t rows, int64_t cols) const {
    (void)rows;
    (void)cols;
    return 0;
  }
  virtual int64_t RowBytes(int64_t cols) const = 0;
  int64_t PackedBytes(int64_t rows, int64_t cols) const {
    return HeaderBytes(rows, cols) + rows * RowBytes(cols);
  }
  // Exact storage cost per weight for this shape, every shared field and the padding included.
  double BitsPerWeight(int64_t rows, int64_t cols) const {
    return 8.0 * static_cast<double>(PackedBytes(rows, cols)) /
           (static_cast<double>(rows) * static_cast<double>(cols));
  }
  // Bits per weight of a 4096 x 4096 tensor: the figure `lowbit formats` lists. Exact for block
  // formats whose block divides 4096; for per-row/per-tensor fields it shows their amortised cost.
  double NominalBitsPerWeight() const { return BitsPerWeight(4096, 4096); }

  // Decode-only formats (e.g. GGUF k-quants) return false and Quantize() returns kUnimplemented.
  virtual bool can_quantize() const { return true; }

  // x: (rows, cols) row-major floats -> out: PackedBytes(rows, cols) bytes.
  virtual Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const = 0;

  // packed: the whole packed tensor (header first). Writes rows [row_begin, row_end) of the
  // (rows, cols) tensor into out: ((row_end - row_begin), cols) row-major. Never fails: any byte
  // pattern decodes to some float (NaN where the format says so).
  virtual void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                              int64_t row_end, float* out) const = 0;
  void Dequantize(const uint8_t* packed, int64_t rows, int64_t cols, float* out) const {
    DequantizeRows(packed, rows, cols, 0, rows, out);
  }

  // Per-element bound on |x - dequantize(quantize(x))| for finite x, derived from the format's
  // definition (half a grid step at the element's scale, plus clipping where the format saturates).
  // bound: (rows, cols). +Inf where no finite bound exists (an element that overflows to Inf/NaN
  // under IEEE overflow semantics). Tests check this on 10^6 random blocks.
  virtual void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const = 0;

  // Whether quantize(dequantize(q)) reproduces q's values for every q. True for every format
  // except where its definition forbids it: BFP's literal ceil(log2 max|x|) exponent rule, where a
  // block whose dequantized maximum is an exact power of two gets a smaller exponent the second
  // time (documented in docs/formats/block_fp.md). The property tests check it wherever true.
  virtual bool idempotent() const { return true; }

  virtual ToleranceClass tolerance() const { return ToleranceClass::kErrorBand; }
  // ggml_type id when the byte layout is identical to llama.cpp's.
  virtual std::optional<int> gguf_type() const { return std::nullopt; }
  // The MAC operand for the arithmetic-density estimate. Default: elements decoded through a table
  // to fp16 before the MAC (codebook formats).
  virtual MacOperand mac_operand() const { return MacOperand{}; }
};

using FormatPtr = std::shared_ptr<const Format>;

}  // namespace lowbit
