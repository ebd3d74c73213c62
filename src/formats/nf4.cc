// NormalFloat-4, family "nf4": the reference codec. The definition (table, bit layout, rounding,
// special values, tails) is the doc block of nf4.h and docs/formats/nf4.md.
#include "formats/error_bound_math.h"
#include "formats/nf4.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "formats/block_format.h"
#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

constexpr int kZeroCode = 7;
constexpr int kMinBlock = 16;
constexpr int kMaxBlock = 4096;

// Midpoints between neighbouring table values, exact in double (sums of two floats).
constexpr std::array<double, 15> MakeMidpoints() {
  std::array<double, 15> mid{};
  for (int k = 0; k < 15; ++k) {
    mid[k] = (static_cast<double>(kNf4Values[k]) + static_cast<double>(kNf4Values[k + 1])) / 2;
  }
  return mid;
}
constexpr std::array<double, 15> kMidpoints = MakeMidpoints();

// Number of midpoints below x / a, i.e. the nearest code with ties to the lower one; a > 0.
// a * M_k is exact in double (a: <= 24 significant bits, M_k: <= 26), so this decides exactly.
int NearestNf4Code(double x, double a) {
  int c = 0;
  while (c < 15 && x > a * kMidpoints[c]) ++c;
  return c;
}

class Nf4Format final : public BlockFormat {
 public:
  explicit Nf4Format(const Nf4Options& options) : options_(options) {}

  std::string spec() const override {
    return "nf4:block=" + std::to_string(options_.block) +
           ",scale=" + (options_.f16_scale ? "f16" : "f32");
  }
  std::string_view family() const override { return "nf4"; }
  int64_t block_size() const override { return options_.block; }
  int64_t block_bytes() const override { return scale_bytes() + (options_.block + 1) / 2; }

  void EncodeBlock(const float* x, uint8_t* out) const override {
    const int n = options_.block;
    const float amax = FiniteAbsMax(x);
    const float a = ScaleFor(amax);
    WriteScale(a, out);
    uint8_t* codes = out + scale_bytes();
    std::memset(codes, 0, static_cast<size_t>((n + 1) / 2));
    for (int i = 0; i < n; ++i) {
      const int c = EncodeElement(x[i], amax, a);
      codes[i / 2] = static_cast<uint8_t>(codes[i / 2] | (i % 2 == 0 ? c << 4 : c));
    }
  }

  void DecodeBlock(const uint8_t* in, float* out) const override {
    const float a = ReadScale(in);
    const uint8_t* codes = in + scale_bytes();
    for (int i = 0; i < options_.block; ++i) {
      out[i] = kNf4Values[Nf4CodeAt(codes, i)] * a;
    }
  }

  // Nearest rounding on the grid A * v_k: half the gap around x (after clipping to [-A, A]), plus
  // the clipped part, plus the float rounding of v * A; the absmax element is set to +-A.
  void BlockErrorBound(const float* x, float* bound) const override {
    const float amax = FiniteAbsMax(x);
    const double a = ScaleFor(amax);
    for (int i = 0; i < options_.block; ++i) {
      const float xf = x[i];
      if (!std::isfinite(xf)) {
        bound[i] = INFINITY;
        continue;
      }
      const double v = xf;
      if (a == 0.0) {
        bound[i] = RoundUpToFloat(std::fabs(v));
        continue;
      }
      const double clipped = std::clamp(v, -a, a);
      int k = 0;  // the table interval [v_k, v_k+1] * A holding the clipped value
      while (k < 14 && clipped > a * kNf4Values[k + 1]) ++k;
      double b = a * (static_cast<double>(kNf4Values[k + 1]) - kNf4Values[k]) / 2 +
                 (std::fabs(v) - std::fabs(clipped)) + 0.5 * FloatSpacing(a);
      if (xf != 0.0f && std::fabs(xf) == amax) b = std::max(b, std::fabs(std::fabs(v) - a));
      bound[i] = RoundUpToFloat(b);
    }
  }

 private:
  int64_t scale_bytes() const { return options_.f16_scale ? 2 : 4; }

  float FiniteAbsMax(const float* x) const {
    float amax = 0.0f;
    for (int i = 0; i < options_.block; ++i) {
      if (std::isfinite(x[i])) amax = std::max(amax, std::fabs(x[i]));
    }
    return amax;
  }

  // The stored scale: amax itself (f32) or its nearest fp16 value, saturating at 65504.
  float ScaleFor(float amax) const {
    if (!options_.f16_scale) return amax;
    const double rounded = kFp16Codec.RoundMagnitude(amax, MinifloatCodec::Rounding::kNearestEven);
    return static_cast<float>(std::min(rounded, 65504.0));
  }

  int EncodeElement(float x, float amax, float a) const {
    if (a == 0.0f || std::isnan(x)) return kZeroCode;
    if (std::isinf(x) || std::fabs(x) == amax) return x > 0 ? 15 : 0;
    int c = NearestNf4Code(x, a);
    // Only when v * A underflows float32's normal range can the decoded value sit nearer another
    // code; move to the code nearest the decoded value (the same float) until stable. The map is
    // monotone in c, so this ends.
    for (int round = 0; round < 16; ++round) {
      const int again = NearestNf4Code(kNf4Values[c] * a, a);
      if (again == c) break;
      c = again;
    }
    return c;
  }

  void WriteScale(float a, uint8_t* out) const {
    if (options_.f16_scale) {
      const uint16_t h = static_cast<uint16_t>(kFp16Codec.EncodeGridMagnitude(a));
      out[0] = static_cast<uint8_t>(h & 0xFF);
      out[1] = static_cast<uint8_t>(h >> 8);
      return;
    }
    uint32_t bits = 0;
    std::memcpy(&bits, &a, sizeof(bits));
    for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(bits >> (8 * i));
  }

  float ReadScale(const uint8_t* in) const {
    if (options_.f16_scale) return HalfToFloat(static_cast<uint16_t>(in[0] | (in[1] << 8)));
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits |= static_cast<uint32_t>(in[i]) << (8 * i);
    float a = 0.0f;
    std::memcpy(&a, &bits, sizeof(a));
    return a;
  }

  Nf4Options options_;
};

Result<FormatPtr> MakeNf4FromSpec(SpecParams& params) {
  LOWBIT_ASSIGN_OR_RETURN(const int64_t block, params.GetInt("block", 64, kMinBlock, kMaxBlock));
  LOWBIT_ASSIGN_OR_RETURN(const std::string scale, params.GetEnum("scale", "f32", {"f32", "f16"}));
  Nf4Options options;
  options.block = static_cast<int>(block);
  options.f16_scale = scale == "f16";
  return MakeNf4Format(options);
}

}  // namespace

Result<FormatPtr> MakeNf4Format(const Nf4Options& options) {
  if (options.block < kMinBlock || options.block > kMaxBlock) {
    return InvalidArgument("format 'nf4': block=" + std::to_string(options.block) +
                           " is out of range [" + std::to_string(kMinBlock) + ", " +
                           std::to_string(kMaxBlock) + "]");
  }
  return FormatPtr(std::make_shared<Nf4Format>(options));
}

void RegisterNf4Family(FormatRegistry& registry) {
  registry.AddFamily({"nf4", "NormalFloat-4 (QLoRA), absmax scale per block",
                      "block=16..4096, scale=f32|f16", "docs/formats/nf4.md", MakeNf4FromSpec});
  // The preset "nf4" is also the family default (block=64, scale=f32), as the registry requires
  // of a preset named after its family.
  registry.AddPreset({"nf4", "nf4:block=64,scale=f32",
                      "NF4, float32 absmax per 64 as bitsandbytes (4.5 b/w)"});
  registry.AddPreset({"nf4_f16", "nf4:block=64,scale=f16", "NF4, fp16 absmax per 64 (4.25 b/w)"});
}

}  // namespace lowbit
