// The "bm" family: block minifloat, ExMy minifloat elements (no Inf/NaN) sharing one 8-bit
// exponent bias per block.
//
// Sources: Fox, Rasoulinezhad, Faraone, Boland, Leong, "A Block Minifloat Representation for
// Training Deep Neural Networks", ICLR 2021 (openreview.net/forum?id=6zaTwpNSsQ2), and its
// reference code (github.com/sfox14/block_minifloat, quant/quant_function.py and
// quant/block_design.py: an 8-bit shared exponent floor(log2 max|x|) clamped to [-128, 127], the
// block scaled so that this exponent becomes the element's largest exponent, subnormals kept,
// saturation at the largest element); Zhang et al., "Revisiting Block-based Quantisation: What is
// Important for Sub-8-bit LLM Inference?", EMNLP 2023 (arXiv:2310.05079), whose 8-bit BM setting
// is E4M3 elements, an 8-bit shared bias and blocks of 16 (github.com/ChengZhang-98/llm-mixed-q,
// experiments/asplos/configs/quantize/arith/block_minifloat.toml).
//
// Parameters (canonical order): e = 1..7 exponent bits, m = 0..6 mantissa bits (1 + e + m <= 8),
// block = B = 2..256 (default 16).
//
// Element: sign, e-bit exponent field F, m-bit mantissa field M, every code finite (no Inf/NaN),
//   with subnormals; decoded by MinifloatCodec(e, m, kFinite) (bias b = 2^(e-1) - 1):
//   elem = (-1)^s * 2^(1-b) * M/2^m (F = 0), (-1)^s * 2^(F-b) * (1 + M/2^m) (F > 0).
//   emax = 2^e - 1 - b = 2^(e-1) is the exponent of its top binade; max_elem = 2^emax (2 - 2^-m).
// Block value, with the stored shared exponent S (int8):
//   x_i = elem_i * 2^(S - emax)
// equivalently the element exponent field has the block bias beta = 2^e - 1 - S: the all-ones
// exponent field is worth 2^S, the binade of the block's largest magnitude (the paper's shared
// exponent bias; lowbit stores S, the reference code's 8-bit quantity).
//
// Encoding one block:
//   * S = floor(log2 max_i |x_i|), clamped to [-128, 127]; all-zero (or all-NaN) block: S = -128.
//     The upper clamp never binds for float input (floor(log2 FLT_MAX) = 127).
//   * elem_i = |x_i| * 2^(emax - S) (exact), rounded to nearest, ties to even, on the element grid
//     (subnormals included), saturated at max_elem; the sign bit of x_i is kept (also for -0 and
//     values that round to 0). The block max lies in [2^emax, 2^(emax+1)) and rounds within that
//     top binade (or saturates to max_elem), so the dequantized block has the same S and
//     quantizing it again reproduces the bytes (idempotent). Elements below half the smallest
//     subnormal 2^(1-b-m) * 2^(S-emax) flush to +-0.
//   * a block whose max is below 2^-127 keeps S = -128; its elements land below the top binade.
//   * NaN and +-Inf: see block_fp.h (NaN -> signed zero, ignored for S; +-Inf acts as +-FLT_MAX).
// Decoding: elem * 2^(S - emax), computed exactly in double and rounded once to float. For data
//   the encoder wrote the result is a float exactly; bytes it never writes with S near -128 and
//   e >= 5 can denote values below float's subnormal range, which round (possibly to 0).
//   The largest magnitude is (2 - 2^-m) * 2^127 < FLT_MAX.
// Bit layout (block_fp.h): [int8 S][B codes of 1+e+m bits, little-endian bit stream]; a code is
//   bit e+m = sign, bits m..m+e-1 = F, bits 0..m-1 = M. block_bytes = 1 + ceil(B(1+e+m)/8).
// Tail: rows padded with +0.0 to a whole block (BlockFormat).
// Error bound per element: half the element grid step at elem_i (subnormal step below the
//   smallest normal), or the saturation error elem_i - max_elem where larger, times 2^(S - emax).
//
// Not reproduced: the MASE block_minifloat quantizer used by Zhang et al. computes its bias as
// floor(log2 max) clamped to [0, 2^8 - 1] and passes it as the minifloat's exponent bias; lowbit
// follows Fox et al.'s definition (block max in the element's top binade).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "formats/block_format.h"
#include "formats/block_fp.h"
#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

using block_shared::FloorLog2;
using block_shared::kMaxBlock;
using block_shared::kMaxSharedExponent;
using block_shared::kMinSharedExponent;

class BlockMinifloatFormat final : public BlockFormat {
 public:
  BlockMinifloatFormat(int exp_bits, int man_bits, int block)
      : codec_(exp_bits, man_bits, MinifloatCodec::Specials::kFinite),
        block_(block),
        emax_(codec_.emax()),
        max_elem_(codec_.max_finite()) {
    for (uint32_t c = 0; c < codec_.num_codes(); ++c) element_values_[c] = codec_.Decode(c);
  }

  std::string spec() const override {
    return "bm:e=" + std::to_string(codec_.exp_bits()) + ",m=" + std::to_string(codec_.man_bits()) +
           ",block=" + std::to_string(block_);
  }
  std::string_view family() const override { return "bm"; }
  // Minifloat elements; the shared exponent bias is an 8-bit adder per block.
  MacOperand mac_operand() const override {
    return {.significand_bits = codec_.man_bits() + 1, .exponent_bits = codec_.exp_bits(),
            .shared_block = block_, .shared_bits = 8};
  }
  int64_t block_size() const override { return block_; }
  int64_t block_bytes() const override {
    return 1 + block_shared::PackedCodeBytes(block_, codec_.total_bits());
  }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const int s = SharedExponent(x);
    std::array<uint32_t, kMaxBlock> codes;
    for (int i = 0; i < block_; ++i) {
      const double v = block_shared::SanitizeInput(x[i]);
      const double elem = std::ldexp(std::fabs(v), emax_ - s);  // exact power-of-two scaling
      const double mag = codec_.RoundMagnitude(elem, MinifloatCodec::Rounding::kNearestEven);
      const uint32_t magnitude_code =
          mag > max_elem_ ? codec_.max_finite_code() : codec_.EncodeGridMagnitude(mag);
      codes[i] = (std::signbit(v) ? codec_.sign_mask() : 0u) | magnitude_code;
    }
    std::memset(out, 0, static_cast<size_t>(block_bytes()));
    out[0] = static_cast<uint8_t>(static_cast<int8_t>(s));
    block_shared::PackCodes(codes.data(), block_, codec_.total_bits(), out + 1);
  }

  void DecodeBlock(const uint8_t* in, float* out) const override {
    const int shift = static_cast<int8_t>(in[0]) - emax_;
    std::array<uint32_t, kMaxBlock> codes;
    block_shared::UnpackCodes(in + 1, block_, codec_.total_bits(), codes.data());
    for (int i = 0; i < block_; ++i) {
      out[i] = static_cast<float>(std::ldexp(element_values_[codes[i]], shift));
    }
  }

  void BlockErrorBound(const float* x, float* bound) const override {
    const int s = SharedExponent(x);
    for (int i = 0; i < block_; ++i) {
      const double elem = std::ldexp(std::fabs(static_cast<double>(x[i])), emax_ - s);
      const double err = std::max(HalfStep(elem), elem - max_elem_);
      bound[i] = block_shared::RoundUpToFloat(std::ldexp(err, s - emax_));
    }
  }

 private:
  // S = floor(log2 max|x_i|) clamped to [-128, 127]; -128 for an all-zero block.
  int SharedExponent(const float* x) const {
    const double max_abs = block_shared::BlockMaxAbs(x, block_);
    if (max_abs == 0.0) return kMinSharedExponent;
    return std::clamp(FloorLog2(max_abs), kMinSharedExponent, kMaxSharedExponent);
  }

  // Half the element grid step around magnitude elem (the subnormal step below the normals).
  double HalfStep(double elem) const {
    const int min_binade = 1 - codec_.bias();
    const int binade = elem > 0.0 ? std::max(FloorLog2(elem), min_binade) : min_binade;
    return std::ldexp(1.0, binade - codec_.man_bits() - 1);
  }

  MinifloatCodec codec_;
  int block_;
  int emax_;                                  // exponent of the element's top binade, 2^(e-1)
  double max_elem_;                           // largest element magnitude, 2^emax (2 - 2^-m)
  std::array<double, 256> element_values_{};  // value of each element code
};

Result<FormatPtr> MakeBlockMinifloat(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(int64_t exp_bits, params.GetInt("e", 4, 1, 7));
  LOWBIT_ASSIGN_OR_RETURN(int64_t man_bits, params.GetInt("m", 3, 0, 6));
  LOWBIT_ASSIGN_OR_RETURN(int64_t block, params.GetInt("block", 16, 2, 256));
  if (1 + exp_bits + man_bits > 8) {
    return InvalidArgument("format 'bm': e=" + std::to_string(exp_bits) +
                           ",m=" + std::to_string(man_bits) + " gives a " +
                           std::to_string(1 + exp_bits + man_bits) +
                           "-bit element; 1 + e + m must be at most 8");
  }
  return FormatPtr(std::make_shared<BlockMinifloatFormat>(
      static_cast<int>(exp_bits), static_cast<int>(man_bits), static_cast<int>(block)));
}

}  // namespace

void RegisterBlockMinifloatFamily(FormatRegistry& registry) {
  registry.AddFamily({
      "bm",
      "Block minifloat: ExMy elements (no Inf/NaN) with an int8 shared exponent bias per block",
      "e=1..7, m=0..6 (1 + e + m <= 8), block=2..256 (default 16)",
      "docs/formats/block_minifloat.md",
      MakeBlockMinifloat,
  });
  const auto add = [&](const char* name, int e, int m, const char* description) {
    registry.AddPreset(
        {name, "bm:e=" + std::to_string(e) + ",m=" + std::to_string(m) + ",block=16", description});
  };
  add("bm8", 4, 3, "BM8: E4M3 elements, int8 shared bias per 16 (Zhang et al. 2023)");
  add("bm8_e2m5", 2, 5, "BM8 with Fox et al.'s forward-pass E2M5 elements, int8 bias per 16");
  add("bm6", 3, 2, "BM6: E3M2 elements, int8 shared bias per 16");
  add("bm5", 2, 2, "BM5: E2M2 elements, int8 shared bias per 16");
  add("bm4", 2, 1, "BM4: E2M1 elements, int8 shared bias per 16");
  add("bm3", 1, 1, "BM3: E1M1 elements, int8 shared bias per 16");
}

}  // namespace lowbit
