// The "bfp" family: block floating point, one 8-bit exponent shared by a block of sign-magnitude
// integer mantissas.
//
// Sources: Zhang, Cheng, Shumailov, Constantinides, Zhao, "Revisiting Block-based Quantisation:
// What is Important for Sub-8-bit LLM Inference?", EMNLP 2023 (arXiv:2310.05079), section 3 and
// the authors' MASE quantizer (DeepWok/mase, src/chop/nn/quantizers/block_fp.py: width = sign +
// mantissa bits, shared exponent ceil(log2 max|x|), 8-bit exponent and blocks [1, 16] in their
// configs, github.com/ChengZhang-98/llm-mixed-q); MSFP, Darvish Rouhani et al., "Pushing the
// Limits of Narrow Precision Inferencing at Cloud Scale with Microsoft Floating Point",
// NeurIPS 2020 (the BFP variant the MASE quantizer cites).
//
// Parameters (canonical order): w = 3..8 bits per element (1 sign bit + a (w-1)-bit magnitude),
// block = B = 2..256 elements per block (default 16), exp = ceil|floor1 (shared-exponent rule,
// default ceil).
//
// Value of a block with shared exponent E and element codes (s_i, M_i):
//   x_i = (-1)^s_i * M_i * 2^(E - (w-1)),   M_i in [0, 2^(w-1) - 1]
// i.e. M_i / 2^(w-1) is a fraction in [0, 1) scaled by 2^E.
//
// Encoding one block:
//   * shared exponent, parameter exp (both clamped to the int8 range [-128, 127]):
//       exp=ceil   (default; the paper's and MASE's rule): E = ceil(log2 max_i |x_i|).
//       exp=floor1 : E = floor(log2 max_i |x_i|) + 1.
//     The two agree unless max|x| is an exact power of two 2^k. There ceil gives E = k and the
//     maximum would need M = 2^(w-1), one more than the largest code, so it saturates to
//     (1 - 2^-(w-1)) * 2^k; floor1 gives E = k + 1 and stores it exactly. Consequence for ceil:
//     quantizing a dequantized block is NOT always the identity - when the block maximum rounds
//     to a power of two (w=3: 1.2 -> 1.0), the second pass picks E - 1 and saturates that element
//     (1.0 -> 0.75). Format::idempotent() reports this; floor1 is idempotent (its largest element
//     always lies in [2^(E-1), 2^E), so M lies in [2^(w-2), 2^(w-1)] before saturation).
//     All-zero block (also all NaN): E = -128 (log2 0 = -inf, clamped).
//   * elements: M_i = round_half_even(|x_i| / 2^(E - (w-1))), saturated at 2^(w-1) - 1; s_i is the
//     sign bit of x_i (so -0.0, and negatives that round to 0, keep their sign).
//     Saturation occurs only (a) when |x_max| / 2^(E-(w-1)) lies in [2^(w-1) - 1/2, 2^(w-1)) and
//     rounds up to 2^(w-1) (error < one step), or (b) when E hits the upper clamp (|x| >= 2^127).
//     Subnormal float inputs need no special case (they are ordinary doubles here); a block whose
//     max is below 2^-129 uses E = -128 and its elements round on the grid 2^(-128-(w-1)).
//   * NaN and +-Inf: see block_fp.h (NaN -> signed zero, ignored for E; +-Inf acts as +-FLT_MAX,
//     giving E = 127 and a saturated element).
// Decoding: M * 2^(E-(w-1)) is exact in float for every byte pattern (at most 7 significant bits,
//   exponents between -135 and 127); a code with M = 0 decodes to +-0.
// Range: largest magnitude (2^(w-1) - 1) * 2^(128 - w), smallest non-zero 2^(-127 - w).
// Bit layout (block_fp.h): [int8 E][B codes of w bits, little-endian bit stream]; a code is
//   bit w-1 = sign, bits 0..w-2 = M. block_bytes = 1 + ceil(B*w/8); bits/weight = w + 8/B when
//   B*w is a multiple of 8 (e.g. w=6, B=16: 13 bytes = 6.5 bits, 32/6.5 = 4.92x denser than f32).
// Tail: rows padded with +0.0 to a whole block (BlockFormat).
// Error bound per element: half a step, 2^(E-w), or the saturation error |x| - M_max * 2^(E-(w-1))
//   where that is larger.
#include "formats/block_fp.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "formats/block_format.h"
#include "formats/families.h"

namespace lowbit {
namespace {

using block_shared::FloorLog2;
using block_shared::kMaxBlock;
using block_shared::kMaxSharedExponent;
using block_shared::kMinSharedExponent;

class BlockFpFormat final : public BlockFormat {
 public:
  BlockFpFormat(int bits, int block, bool ceil_rule)
      : bits_(bits), block_(block), ceil_rule_(ceil_rule), max_mantissa_((1u << (bits - 1)) - 1) {}

  std::string spec() const override {
    return "bfp:w=" + std::to_string(bits_) + ",block=" + std::to_string(block_) +
           (ceil_rule_ ? ",exp=ceil" : ",exp=floor1");
  }
  bool idempotent() const override { return !ceil_rule_; }
  // Sign-magnitude mantissas (bits - 1 magnitude bits), an 8-bit shared exponent per block.
  MacOperand mac_operand() const override {
    return {.significand_bits = bits_ - 1, .exponent_bits = 0, .shared_block = block_,
            .shared_bits = 8};
  }
  std::string_view family() const override { return "bfp"; }
  int64_t block_size() const override { return block_; }
  int64_t block_bytes() const override { return 1 + block_shared::PackedCodeBytes(block_, bits_); }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const int e = SharedExponent(x);
    const double step = Step(e);
    std::array<uint32_t, kMaxBlock> codes;
    for (int i = 0; i < block_; ++i) {
      const double v = block_shared::SanitizeInput(x[i]);
      // |v| / step is exact: step is a power of two and the quotient stays a normal double.
      const double m = std::min(block_shared::RoundHalfEven(std::fabs(v) / step),
                                static_cast<double>(max_mantissa_));
      codes[i] = (std::signbit(v) ? 1u << (bits_ - 1) : 0u) | static_cast<uint32_t>(m);
    }
    std::memset(out, 0, static_cast<size_t>(block_bytes()));
    out[0] = static_cast<uint8_t>(static_cast<int8_t>(e));
    block_shared::PackCodes(codes.data(), block_, bits_, out + 1);
  }

  void DecodeBlock(const uint8_t* in, float* out) const override {
    const double step = Step(static_cast<int8_t>(in[0]));
    std::array<uint32_t, kMaxBlock> codes;
    block_shared::UnpackCodes(in + 1, block_, bits_, codes.data());
    for (int i = 0; i < block_; ++i) {
      const double mag = static_cast<double>(codes[i] & max_mantissa_) * step;
      out[i] = static_cast<float>((codes[i] >> (bits_ - 1)) != 0 ? -mag : mag);
    }
  }

  void BlockErrorBound(const float* x, float* bound) const override {
    const double step = Step(SharedExponent(x));
    const double largest = static_cast<double>(max_mantissa_) * step;
    for (int i = 0; i < block_; ++i) {
      const double clip = std::fabs(static_cast<double>(x[i])) - largest;
      bound[i] = block_shared::RoundUpToFloat(std::max(step / 2, clip));
    }
  }

 private:
  // E = ceil(log2 max|x_i|) or floor(log2 max|x_i|) + 1, clamped to [-128, 127]; -128 for an
  // all-zero block.
  int SharedExponent(const float* x) const {
    const double max_abs = block_shared::BlockMaxAbs(x, block_);
    if (max_abs == 0.0) return kMinSharedExponent;
    const int floor_log2 = FloorLog2(max_abs);
    const bool power_of_two = std::ldexp(1.0, floor_log2) == max_abs;
    const int e = (ceil_rule_ && power_of_two) ? floor_log2 : floor_log2 + 1;
    return std::clamp(e, kMinSharedExponent, kMaxSharedExponent);
  }

  // The value of one mantissa unit: 2^(E - (w-1)).
  double Step(int e) const { return std::ldexp(1.0, e - (bits_ - 1)); }

  int bits_;
  int block_;
  bool ceil_rule_;  // exp=ceil (else floor1)
  uint32_t max_mantissa_;  // 2^(w-1) - 1, also the magnitude mask of a code
};

Result<FormatPtr> MakeBlockFp(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(int64_t bits, params.GetInt("w", 8, 3, 8));
  LOWBIT_ASSIGN_OR_RETURN(int64_t block, params.GetInt("block", 16, 2, 256));
  LOWBIT_ASSIGN_OR_RETURN(std::string exp_rule, params.GetEnum("exp", "ceil", {"ceil", "floor1"}));
  return FormatPtr(std::make_shared<BlockFpFormat>(static_cast<int>(bits), static_cast<int>(block),
                                                   exp_rule == "ceil"));
}

}  // namespace

void RegisterBlockFpFamily(FormatRegistry& registry) {
  registry.AddFamily({
      "bfp",
      "Block floating point: int8 shared exponent per block, sign-magnitude integer mantissas",
      "w=3..8 (bits per element: sign + w-1 mantissa bits), block=2..256 (default 16), "
      "exp=ceil|floor1 (shared exponent ceil(log2 max) or floor(log2 max)+1)",
      "docs/formats/block_fp.md",
      MakeBlockFp,
  });
  // Zhang et al. 2023 evaluate BFP with an 8-bit shared exponent and blocks of 16 along the
  // reduction dimension at 8, 6 and 4 bits; block-32 variants for the block-size trade-off.
  const auto add = [&](const char* name, int bits, int block) {
    const std::string spec =
        "bfp:w=" + std::to_string(bits) + ",block=" + std::to_string(block) + ",exp=ceil";
    const std::string description = "BFP: sign + " + std::to_string(bits - 1) +
                                    "-bit mantissa, int8 exponent per " + std::to_string(block);
    registry.AddPreset({name, spec, description});
  };
  add("bfp8", 8, 16);
  add("bfp6", 6, 16);
  add("bfp5", 5, 16);
  add("bfp4", 4, 16);
  add("bfp3", 3, 16);
  add("bfp8_b32", 8, 32);
  add("bfp6_b32", 6, 32);
  add("bfp4_b32", 4, 32);
}

}  // namespace lowbit
