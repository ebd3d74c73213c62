// The "bl" family: block logarithm, sign + k-bit exponent elements (powers of two) sharing one
// 8-bit exponent bias per block.
//
// Sources: Zhang et al., "Revisiting Block-based Quantisation: What is Important for Sub-8-bit
// LLM Inference?", EMNLP 2023 (arXiv:2310.05079), section 3 "Block Logarithm", and the authors'
// MASE quantizer (DeepWok/mase, src/chop/nn/quantizers/block_log.py and log.py: width = 1 sign
// bit + (width - 1) exponent bits, value (-1)^s 2^(e - bias), exponent rounded to the nearest
// integer in the log domain, bias shared per block); their 8-bit setting is width 8, an 8-bit
// shared bias and blocks of 16 (github.com/ChengZhang-98/llm-mixed-q,
// experiments/asplos/configs/quantize/arith/block_log.toml). Logarithmic data representation:
// Miyashita, Lee, Murmann, "Convolutional Neural Networks using Logarithmic Data
// Representation", arXiv:1603.01025.
//
// Parameters (canonical order): k = 1..7 exponent bits (element = 1 + k bits), block = B =
// 2..256 (default 16).
//
// Element code: sign s, k-bit field c. c = 0 is zero (+-0, sign kept); c = 1 .. 2^k - 1 is
//   x = (-1)^s * 2^(c - bias),   bias = 2^k - 1 - S,
// where S (int8, stored per block) is the exponent of the top code: c = 2^k - 1 is worth 2^S and
// the smallest non-zero magnitude is 2^(S - 2^k + 2), i.e. 2^k - 1 consecutive powers of two.
//
// Rounding in the log domain: RoundLog2(a) = the integer nearest to log2(a): with e =
//   floor(log2 a), e + 1 if a >= 2^(e + 1/2) else e. 2^(e+1/2) is irrational, so no float (or
//   double) lies on the threshold: there are no ties. Evaluated exactly as (a / 2^e)^2 >= 2
//   (a / 2^e has at most 24 significant bits, so the square is exact in double).
//
// Encoding one block:
//   * S = RoundLog2(max_i |x_i|), clamped to [-128, 127]; all-zero (or all-NaN) block: S = -128.
//     The block max therefore gets the top code 2^k - 1 (unless S was clamped), the dequantized
//     block has the same S, and quantizing it again reproduces the bytes (idempotent). The upper
//     clamp binds only for |x| >= 2^127.5 (RoundLog2 = 128): such elements saturate to 2^127.
//   * element: r = RoundLog2(|x_i|), c = r - S + 2^k - 1; c > 2^k - 1 saturates (upper clamp
//     only); c < 1, i.e. |x_i| < 2^(S - 2^k + 1.5), underflows to +-0 (zero is not a power of
//     two, so below the smallest code's log-domain cell there is nothing nearer to round to);
//     zero and NaN give c = 0 with the input's sign.
//   * +-Inf acts as +-FLT_MAX (RoundLog2 = 128: S = 127 and the element saturates to +-2^127);
//     see block_fp.h.
// Decoding: +-2^(c - bias), exact in float for data the encoder wrote; bytes it never writes may
//   denote powers of two below 2^-149, which round to 0 (2^-150 rounds to even, i.e. 0).
// Bit layout (block_fp.h): [int8 S][B codes of k+1 bits, little-endian bit stream]; a code is
//   bit k = sign, bits 0..k-1 = c. block_bytes = 1 + ceil(B(k+1)/8).
// Tail: rows padded with +0.0 to a whole block (BlockFormat).
// Error bound per element: within the code range the worst case of log-domain rounding is
//   |x| just at 2^(r - 1/2) rounding up to 2^r, an error of (sqrt(2) - 1)|x|, so the bound is
//   (sqrt(2) - 1)|x|; |x| where it underflows to zero; |x| - 2^127 where it saturates (if larger).
//
// Not reproduced: MASE's block_log derives the bias from ceil(log2 max) (so a block max of 1.2
// sits one code below the top) and clamps the bias to [0, 255]; lowbit rounds the max with the
// same nearest-in-log rule as the elements, which keeps quantization idempotent.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "formats/block_format.h"
#include "formats/block_fp.h"
#include "formats/families.h"

namespace lowbit {
namespace {

using block_shared::kMaxBlock;
using block_shared::kMaxSharedExponent;
using block_shared::kMinSharedExponent;

// sqrt(2) - 1 rounded up to a double (the exact value is irrational).
constexpr double kSqrt2MinusOneUp = 0.41421356237309515;

// The integer nearest to log2(a) for finite a > 0 (see the file comment; no ties exist).
int RoundLog2(double a) {
  int p = 0;
  const double f = std::frexp(a, &p);  // a = f * 2^p, f in [0.5, 1)
  const double mantissa = 2.0 * f;     // a = mantissa * 2^(p-1), mantissa in [1, 2)
  return mantissa * mantissa >= 2.0 ? p : p - 1;
}

class BlockLogFormat final : public BlockFormat {
 public:
  BlockLogFormat(int exp_bits, int block)
      : exp_bits_(exp_bits), block_(block), top_code_((1u << exp_bits) - 1) {}

  std::string spec() const override {
    return "bl:k=" + std::to_string(exp_bits_) + ",block=" + std::to_string(block_);
  }
  std::string_view family() const override { return "bl"; }
  // A product of two log-domain elements is an addition of their exponents: no multiplier.
  MacOperand mac_operand() const override {
    return {.significand_bits = 0, .exponent_bits = exp_bits_, .shared_block = block_,
            .shared_bits = 8};
  }
  int64_t block_size() const override { return block_; }
  int64_t block_bytes() const override {
    return 1 + block_shared::PackedCodeBytes(block_, exp_bits_ + 1);
  }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const int s = SharedExponent(x);
    std::array<uint32_t, kMaxBlock> codes;
    for (int i = 0; i < block_; ++i) {
      const double v = block_shared::SanitizeInput(x[i]);
      uint32_t c = 0;
      if (v != 0.0) {
        // c - (2^k - 1) = r - S, computed in int before any clamping (r in [-149, 128]).
        const int offset = std::min(RoundLog2(std::fabs(v)) - s, 0);
        const int code = static_cast<int>(top_code_) + offset;
        c = code >= 1 ? static_cast<uint32_t>(code) : 0u;
      }
      codes[i] = (std::signbit(v) ? 1u << exp_bits_ : 0u) | c;
    }
    std::memset(out, 0, static_cast<size_t>(block_bytes()));
    out[0] = static_cast<uint8_t>(static_cast<int8_t>(s));
    block_shared::PackCodes(codes.data(), block_, exp_bits_ + 1, out + 1);
  }

  void DecodeBlock(const uint8_t* in, float* out) const override {
    const int s = static_cast<int8_t>(in[0]);
    std::array<uint32_t, kMaxBlock> codes;
    block_shared::UnpackCodes(in + 1, block_, exp_bits_ + 1, codes.data());
    for (int i = 0; i < block_; ++i) {
      const uint32_t c = codes[i] & top_code_;
      const double mag =
          c == 0 ? 0.0 : std::ldexp(1.0, static_cast<int>(c) - static_cast<int>(top_code_) + s);
      out[i] = static_cast<float>((codes[i] >> exp_bits_) != 0 ? -mag : mag);
    }
  }

  void BlockErrorBound(const float* x, float* bound) const override {
    const int s = SharedExponent(x);
    // |x| below 2^(S - 2^k + 1.5) underflows: RoundLog2 gives an exponent below the smallest code.
    const int smallest_exponent = s - static_cast<int>(top_code_) + 1;
    const double largest = std::ldexp(1.0, s);
    for (int i = 0; i < block_; ++i) {
      const double a = std::fabs(static_cast<double>(x[i]));
      double err = 0.0;
      if (a > 0.0) {
        err = RoundLog2(a) < smallest_exponent ? a : std::max(kSqrt2MinusOneUp * a, a - largest);
      }
      bound[i] = block_shared::RoundUpToFloat(err);
    }
  }

 private:
  // S = RoundLog2(max|x_i|) clamped to [-128, 127]; -128 for an all-zero block.
  int SharedExponent(const float* x) const {
    const double max_abs = block_shared::BlockMaxAbs(x, block_);
    if (max_abs == 0.0) return kMinSharedExponent;
    return std::clamp(RoundLog2(max_abs), kMinSharedExponent, kMaxSharedExponent);
  }

  int exp_bits_;
  int block_;
  uint32_t top_code_;  // 2^k - 1: the code worth 2^S, also the field mask
};

Result<FormatPtr> MakeBlockLog(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(int64_t exp_bits, params.GetInt("k", 7, 1, 7));
  LOWBIT_ASSIGN_OR_RETURN(int64_t block, params.GetInt("block", 16, 2, 256));
  return FormatPtr(
      std::make_shared<BlockLogFormat>(static_cast<int>(exp_bits), static_cast<int>(block)));
}

}  // namespace

void RegisterBlockLogFamily(FormatRegistry& registry) {
  registry.AddFamily({
      "bl",
      "Block logarithm: sign + k-bit exponent (powers of two) with an int8 shared bias per block",
      "k=1..7 (exponent bits; element = 1 + k bits), block=2..256 (default 16)",
      "docs/formats/block_log.md",
      MakeBlockLog,
  });
  // Width w = 1 + k as in MASE's block_log (exponent bits = width - 1); bl8 is the paper's
  // 8-bit configuration, bl6/bl5/bl4 the same construction at the paper's lower bit widths.
  const auto add = [&](const char* name, int k) {
    registry.AddPreset({name, "bl:k=" + std::to_string(k) + ",block=16",
                        "BL" + std::to_string(k + 1) + ": sign + " + std::to_string(k) +
                            "-bit exponent, int8 shared bias per 16"});
  };
  add("bl8", 7);
  add("bl6", 5);
  add("bl5", 4);
  add("bl4", 3);
  add("bl3", 2);
  add("bl2", 1);
}

}  // namespace lowbit
