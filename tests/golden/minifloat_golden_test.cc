// Independent cross-check of lowbit's minifloat codecs against ml_dtypes / numpy.
//
// Files: $LOWBIT_GOLDEN_DIR/minifloat_<name>.bin written by scripts/golden/gen_minifloat.py
// (layout in its docstring; the source versions are in each header). For each type:
//   decode: every code -> float32 bits must equal the reference's (NaN: both NaN, same sign);
//   encode: every input -> code must equal the reference's bit for bit.
// The five minifloat presets are checked twice: through MinifloatCodec with the parameters the
// OCP specs define (written out below, not taken from lowbit), and through the registered preset
// Format (Quantize / Dequantize of one row, packed bytes unpacked here by the documented
// little-endian bitstream rule). fp16 / bf16 go through kFp16Codec / kBf16Codec and
// FloatToHalf / FloatToBf16; for NaN inputs those compare NaN-ness and sign only (NaN payload
// propagation is unspecified by IEEE 754 and lowbit stores a canonical quiet NaN).
// Missing files skip the tests on a developer machine and fail them under CI=true.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/minifloat_codec.h"
#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

constexpr size_t kHeaderBytes = 152;

struct Golden {
  std::string name, dtype, source;
  uint32_t code_bits = 0;
  std::vector<uint32_t> decoded;  // float32 bits, one per code
  std::vector<float> inputs;
  std::vector<uint32_t> codes;  // reference code of each input
};

std::string GoldenPath(const std::string& name) {
  const char* env = std::getenv("LOWBIT_GOLDEN_DIR");
  const std::string dir = env != nullptr ? env : LOWBIT_GOLDEN_DIR;
  return dir + "/minifloat_" + name + ".bin";
}

uint32_t ReadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

std::string ReadText(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p),
                     strnlen(reinterpret_cast<const char*>(p), n));
}

// Parses a file; on a malformed file returns false with a message.
bool ParseGolden(const std::vector<uint8_t>& bytes, Golden* g, std::string* error) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), "LBMFGLD1", 8) != 0) {
    *error = "bad header";
    return false;
  }
  g->name = ReadText(&bytes[8], 32);
  g->dtype = ReadText(&bytes[40], 32);
  g->source = ReadText(&bytes[72], 64);
  g->code_bits = ReadU32(&bytes[136]);
  const uint32_t n_codes = ReadU32(&bytes[140]);
  const uint32_t n_inputs = ReadU32(&bytes[144]);
  if (g->code_bits < 1 || g->code_bits > 16 || n_codes != (1u << g->code_bits) ||
      bytes.size() != kHeaderBytes + 4ull * (n_codes + 2ull * n_inputs)) {
    *error = "inconsistent sizes";
    return false;
  }
  const uint8_t* p = bytes.data() + kHeaderBytes;
  for (uint32_t i = 0; i < n_codes; ++i, p += 4) g->decoded.push_back(ReadU32(p));
  for (uint32_t i = 0; i < n_inputs; ++i, p += 4) {
    const uint32_t b = ReadU32(p);
    float f;
    std::memcpy(&f, &b, 4);
    g->inputs.push_back(f);
  }
  for (uint32_t i = 0; i < n_inputs; ++i, p += 4) g->codes.push_back(ReadU32(p));
  return true;
}

uint32_t FloatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

std::string Hex(uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

// Equal float32 results: identical bits, or both NaN with the same sign.
bool SameFloat(uint32_t a, uint32_t b) {
  float fa, fb;
  std::memcpy(&fa, &a, 4);
  std::memcpy(&fb, &b, 4);
  if (std::isnan(fa) || std::isnan(fb)) {
    return std::isnan(fa) && std::isnan(fb) && std::signbit(fa) == std::signbit(fb);
  }
  return a == b;
}

// Counts mismatches and prints the first few.
class Mismatches {
 public:
  explicit Mismatches(std::string what) : what_(std::move(what)) {}
  void Add(const std::string& detail) {
    if (count_++ < 10) ADD_FAILURE() << what_ << ": " << detail;
  }
  int64_t count() const { return count_; }

 private:
  std::string what_;
  int64_t count_ = 0;
};

// Packs codes LSB-first into a bitstream (the documented exmy layout), independently of lowbit.
std::vector<uint8_t> PackLsbFirst(const std::vector<uint32_t>& codes, int bits) {
  std::vector<uint8_t> out((codes.size() * bits + 7) / 8, 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    for (int j = 0; j < bits; ++j) {
      const size_t bit = i * bits + j;
      if ((codes[i] >> j) & 1u) out[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  return out;
}

uint32_t UnpackLsbFirst(const std::vector<uint8_t>& bytes, size_t i, int bits) {
  uint32_t code = 0;
  for (int j = 0; j < bits; ++j) {
    const size_t bit = i * bits + j;
    code |= static_cast<uint32_t>((bytes[bit / 8] >> (bit % 8)) & 1u) << j;
  }
  return code;
}

void Report(const Golden& g, const std::string& path_name, int64_t n_decode, int64_t n_encode) {
  std::cout << "[golden] " << g.name << " vs " << g.dtype << " (" << g.source << "), " << path_name
            << ": " << n_decode << " codes decoded, " << n_encode
            << " float32 inputs encoded, compared bit for bit\n";
  ::testing::Test::RecordProperty(g.name + "_" + path_name + "_decode_compared",
                                  std::to_string(n_decode));
  ::testing::Test::RecordProperty(g.name + "_" + path_name + "_encode_compared",
                                  std::to_string(n_encode));
}

#define LOAD_GOLDEN_OR_SKIP(golden, type_name)                                          \
  Golden golden;                                                                        \
  do {                                                                                  \
    const std::string path_ = GoldenPath(type_name);                                    \
    LOWBIT_REQUIRE_FILE(path_);                                                         \
    std::string error_;                                                                 \
    ASSERT_TRUE(ParseGolden(::lowbit::testing::ReadFileBytes(path_), &golden, &error_)) \
        << path_ << ": " << error_;                                                     \
    ASSERT_EQ(golden.name, std::string(type_name));                                     \
  } while (0)

struct PresetCase {
  const char* name;
  // The element definition from the specs (OCP OFP8 rev 1.0; OCP MX v1.0 section 5.3).
  int exp_bits, man_bits, bias;
  MinifloatCodec::Specials specials;
};

void PrintTo(const PresetCase& c, std::ostream* os) { *os << c.name; }

class MinifloatGolden : public ::testing::TestWithParam<PresetCase> {};

TEST_P(MinifloatGolden, CodecMatchesMlDtypes) {
  const PresetCase& c = GetParam();
  LOAD_GOLDEN_OR_SKIP(g, c.name);
  const MinifloatCodec codec(c.exp_bits, c.man_bits, c.bias, c.specials);
  ASSERT_EQ(static_cast<uint32_t>(codec.total_bits()), g.code_bits);
  Mismatches decode(std::string(c.name) + " codec decode");
  for (uint32_t code = 0; code < g.decoded.size(); ++code) {
    const uint32_t got = FloatBits(static_cast<float>(codec.Decode(code)));
    if (!SameFloat(got, g.decoded[code])) {
      decode.Add("code " + Hex(code) + ": lowbit " + Hex(got) + ", ml_dtypes " +
                 Hex(g.decoded[code]));
    }
  }
  Mismatches encode(std::string(c.name) + " codec encode");
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const uint32_t got = codec.Encode(g.inputs[i], MinifloatCodec::Rounding::kNearestEven,
                                      MinifloatCodec::Overflow::kIeee);
    if (got != g.codes[i]) {
      encode.Add("input " + Hex(FloatBits(g.inputs[i])) + " (" + std::to_string(g.inputs[i]) +
                 "): lowbit " + Hex(got) + ", ml_dtypes " + Hex(g.codes[i]));
    }
  }
  EXPECT_EQ(decode.count(), 0);
  EXPECT_EQ(encode.count(), 0);
  Report(g, "codec", static_cast<int64_t>(g.decoded.size()), static_cast<int64_t>(g.inputs.size()));
}

TEST_P(MinifloatGolden, PresetFormatMatchesMlDtypes) {
  const PresetCase& c = GetParam();
  LOAD_GOLDEN_OR_SKIP(g, c.name);
  auto format = ParseFormat(c.name);
  ASSERT_TRUE(format.ok()) << format.status().ToString();
  const Format& f = **format;
  const int bits = static_cast<int>(g.code_bits);

  // Decode: one row holding every code in order.
  std::vector<uint32_t> all_codes(g.decoded.size());
  for (uint32_t code = 0; code < all_codes.size(); ++code) all_codes[code] = code;
  const int64_t n_codes = static_cast<int64_t>(all_codes.size());
  std::vector<uint8_t> packed = PackLsbFirst(all_codes, bits);
  packed.resize(static_cast<size_t>(f.PackedBytes(1, n_codes)), 0);
  ASSERT_EQ(f.PackedBytes(1, n_codes), (n_codes * bits + 7) / 8) << "plain layout: no side fields";
  std::vector<float> values(all_codes.size());
  f.Dequantize(packed.data(), 1, n_codes, values.data());
  Mismatches decode(std::string(c.name) + " preset decode");
  for (uint32_t code = 0; code < values.size(); ++code) {
    if (!SameFloat(FloatBits(values[code]), g.decoded[code])) {
      decode.Add("code " + Hex(code) + ": lowbit " + Hex(FloatBits(values[code])) + ", ml_dtypes " +
                 Hex(g.decoded[code]));
    }
  }

  // Encode: one row holding every input.
  const int64_t n = static_cast<int64_t>(g.inputs.size());
  std::vector<uint8_t> out(static_cast<size_t>(f.PackedBytes(1, n)));
  ASSERT_TRUE(f.Quantize(g.inputs.data(), 1, n, out.data()).ok());
  Mismatches encode(std::string(c.name) + " preset encode");
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t got = UnpackLsbFirst(out, static_cast<size_t>(i), bits);
    if (got != g.codes[i]) {
      encode.Add("input " + Hex(FloatBits(g.inputs[i])) + ": lowbit " + Hex(got) + ", ml_dtypes " +
                 Hex(g.codes[i]));
    }
  }
  EXPECT_EQ(decode.count(), 0);
  EXPECT_EQ(encode.count(), 0);
  Report(g, "preset", n_codes, n);
}

using S = MinifloatCodec::Specials;
INSTANTIATE_TEST_SUITE_P(Presets, MinifloatGolden,
                         ::testing::Values(PresetCase{"fp8_e4m3", 4, 3, 7, S::kOneNan},
                                           PresetCase{"fp8_e5m2", 5, 2, 15, S::kIeee},
                                           PresetCase{"fp6_e3m2", 3, 2, 3, S::kFinite},
                                           PresetCase{"fp6_e2m3", 2, 3, 1, S::kFinite},
                                           PresetCase{"fp4_e2m1", 2, 1, 1, S::kFinite}),
                         [](const ::testing::TestParamInfo<PresetCase>& info) {
                           return std::string(info.param.name);
                         });

bool IsNan16(uint32_t code, int exp_bits, int man_bits) {
  const uint32_t exp_max = (1u << exp_bits) - 1;
  return ((code >> man_bits) & exp_max) == exp_max && (code & ((1u << man_bits) - 1)) != 0;
}

void CheckHalfCodec(const Golden& g, const char* what, int exp_bits, int man_bits,
                    float (*decode)(uint16_t), uint16_t (*encode)(float)) {
  Mismatches dec(std::string(what) + " decode");
  for (uint32_t code = 0; code < g.decoded.size(); ++code) {
    const uint32_t got = FloatBits(decode(static_cast<uint16_t>(code)));
    if (!SameFloat(got, g.decoded[code])) {
      dec.Add("code " + Hex(code) + ": lowbit " + Hex(got) + ", reference " + Hex(g.decoded[code]));
    }
  }
  Mismatches enc(std::string(what) + " encode");
  int64_t n_nan = 0;
  const uint32_t sign = 1u << (exp_bits + man_bits);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const uint32_t got = encode(g.inputs[i]);
    const uint32_t want = g.codes[i];
    bool ok = got == want;
    if (std::isnan(g.inputs[i])) {
      ++n_nan;
      ok = IsNan16(got, exp_bits, man_bits) && IsNan16(want, exp_bits, man_bits) &&
           (got & sign) == (want & sign);
    }
    if (!ok) {
      enc.Add("input " + Hex(FloatBits(g.inputs[i])) + ": lowbit " + Hex(got) + ", reference " +
              Hex(want));
    }
  }
  EXPECT_EQ(dec.count(), 0);
  EXPECT_EQ(enc.count(), 0);
  Report(g, "codec", static_cast<int64_t>(g.decoded.size()), static_cast<int64_t>(g.inputs.size()));
  std::cout << "[golden] " << g.name << ": " << n_nan
            << " NaN inputs compared by NaN-ness and sign only\n";
}

TEST(MinifloatGoldenHalf, Fp16CodecMatchesNumpy) {
  LOAD_GOLDEN_OR_SKIP(g, "fp16");
  ASSERT_EQ(g.code_bits, 16u);
  CheckHalfCodec(g, "fp16", 5, 10, HalfToFloat, FloatToHalf);
}

TEST(MinifloatGoldenHalf, Bf16CodecMatchesMlDtypes) {
  LOAD_GOLDEN_OR_SKIP(g, "bf16");
  ASSERT_EQ(g.code_bits, 16u);
  CheckHalfCodec(g, "bf16", 8, 7, Bf16ToFloat, FloatToBf16);
}

}  // namespace
}  // namespace lowbit
