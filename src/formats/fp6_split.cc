// FP6 "4+2" split layout family "fp6split" (docs/formats/fp6_split.md).
//
// What: OCP-style FP6 weights (E3M2 bias 3 or E2M3 bias 1; no Inf/NaN) with one fp16 scale per
// row, stored the way FP6-LLM (Xia et al., "FP6-LLM: Efficiently Serving Large Language Models
// Through FP6-Centric Algorithm-System Co-Design", 2024) stores them: every 6-bit code is split
// into a 2-bit and a 4-bit piece, each kept in its own densely packed array, so that a kernel
// reads whole bytes of 2-bit and 4-bit pieces without 6-bit straddling.
//   fp6split:e=3   (E3M2, max 28)      fp6split:e=2   (E2M3, max 7.5)
// Row layout (cols elements; code c_i = s e.. m.. as in the plain exmy fp6 format):
//   +------------------+--------------------------------+--------------------------------+
//   | fp16 scale (LE)  | 2-bit plane: c_i >> 4          | 4-bit plane: c_i & 0xF         |
//   | 2 bytes          | ceil(cols / 4) bytes           | ceil(cols / 2) bytes           |
//   +------------------+--------------------------------+--------------------------------+
//   2-bit plane byte k = hi[4k+3] hi[4k+2] hi[4k+1] hi[4k]   (MSB .. LSB, 2 bits each)
//   4-bit plane byte k = lo[2k+1] lo[2k]                     (high nibble, low nibble)
//   Unused slots of the last byte of each plane are 0.
// Bits per weight: 6 + 16 / cols + padding of the two planes.
// Scale and elements: exactly the exmy scale=row rule (minifloat.h): s = fp16 RNE of
// absmax / max_finite (lowered one fp16 step only if that is needed to put the largest element
// on max_finite), codes = RNE(x / s) with saturation; a zero row gives scale 0 and +0 codes.
// The element codes equal those of exmy:e=3,m=2,bias=3,special=finite,overflow=sat,scale=row
// (resp. e=2,m=3,bias=1), only the bit placement differs. quantize(dequantize(q)) == q.
// Special values: no Inf/NaN elements: +-Inf saturate (the scale clamps at 65504 for huge
// inputs), NaN stores -0 (+NaN) or +0 (-NaN) like ml_dtypes' float6 types.
// Sources: FP6-LLM (arXiv:2401.14112) for the 4+2 split; OCP Microscaling Formats (MX) v1.0,
// section 5.3, for the FP6 E3M2 / E2M3 element encodings.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "formats/families.h"
#include "formats/minifloat.h"

namespace lowbit {
namespace {

MinifloatCodec Fp6Codec(int e) {
  return e == 3 ? MinifloatCodec(3, 2, 3, MinifloatCodec::Specials::kFinite)
                : MinifloatCodec(2, 3, 1, MinifloatCodec::Specials::kFinite);
}

class Fp6SplitFormat final : public Format {
 public:
  explicit Fp6SplitFormat(int e) : e_(e), elem_(Fp6Codec(e), MinifloatCodec::Overflow::kSaturate) {}

  std::string spec() const override { return "fp6split:e=" + std::to_string(e_); }
  MacOperand mac_operand() const override {
    return {.significand_bits = 5 - e_ + 1, .exponent_bits = e_};  // e + m = 5 bits, + sign
  }
  std::string_view family() const override { return "fp6split"; }
  int64_t block_size() const override { return 0; }
  int64_t block_bytes() const override { return 0; }
  int64_t RowBytes(int64_t cols) const override { return 2 + HiBytes(cols) + (cols + 1) / 2; }

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    std::vector<uint32_t> codes(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = out + r * RowBytes(cols);
      const uint16_t s = elem_.QuantizeScaled(x + r * cols, cols, codes.data());
      dst[0] = static_cast<uint8_t>(s & 0xFF);
      dst[1] = static_cast<uint8_t>(s >> 8);
      uint8_t* hi = dst + 2;
      uint8_t* lo = hi + HiBytes(cols);
      std::fill(hi, dst + RowBytes(cols), uint8_t{0});
      for (int64_t i = 0; i < cols; ++i) {
        hi[i / 4] |= static_cast<uint8_t>(((codes[i] >> 4) & 0x3) << (2 * (i % 4)));
        lo[i / 2] |= static_cast<uint8_t>((codes[i] & 0xF) << (4 * (i % 2)));
      }
    }
    return Status::Ok();
  }

  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override {
    (void)rows;
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint8_t* src = packed + r * RowBytes(cols);
      const float s = HalfToFloat(static_cast<uint16_t>(src[0] | (src[1] << 8)));
      const uint8_t* hi = src + 2;
      const uint8_t* lo = hi + HiBytes(cols);
      float* dst = out + (r - row_begin) * cols;
      for (int64_t i = 0; i < cols; ++i) {
        const uint32_t code =
            (((hi[i / 4] >> (2 * (i % 4))) & 0x3u) << 4) | ((lo[i / 2] >> (4 * (i % 2))) & 0xFu);
        dst[i] = s * elem_.Decode(code);
      }
    }
  }

  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    for (int64_t r = 0; r < rows; ++r) elem_.ScaledErrorBound(x + r * cols, cols, bound + r * cols);
  }

 private:
  static int64_t HiBytes(int64_t cols) { return (cols + 3) / 4; }

  int e_;
  MinifloatElement elem_;
};

Result<FormatPtr> MakeFp6Split(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(const int64_t e, params.GetInt("e", 3, 2, 3));
  return FormatPtr(std::make_shared<Fp6SplitFormat>(static_cast<int>(e)));
}

}  // namespace

void RegisterFp6SplitFamily(FormatRegistry& registry) {
  registry.AddFamily({"fp6split", "FP6 with a per-row fp16 scale in the FP6-LLM 4+2 split layout",
                      "e=2|3 (E2M3 bias 1 or E3M2 bias 3; default 3)", "docs/formats/fp6_split.md",
                      MakeFp6Split});
  registry.AddPreset(
      {"fp6_e3m2_split", "fp6split:e=3", "FP6 E3M2 + fp16 row scale, FP6-LLM 2-bit/4-bit planes"});
  registry.AddPreset(
      {"fp6_e2m3_split", "fp6split:e=2", "FP6 E2M3 + fp16 row scale, FP6-LLM 2-bit/4-bit planes"});
}

}  // namespace lowbit
