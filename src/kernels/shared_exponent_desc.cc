// Maps a format (family() + the parameters of its canonical spec) to a shared-exponent kernel
// kind and the tables that kind decodes with. Sources of every value: the family files
// (src/formats/mx.h, block_fp.cc, block_minifloat.cc, block_log.cc, fp6_split.cc).
#include "kernels/shared_exponent_desc.h"
#include "kernels/shared_exponent_kernels.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "formats/minifloat_codec.h"

namespace lowbit::kernels {
namespace {

// "family:k=v,k=v" -> {k: v}.
std::map<std::string, std::string> SpecParams(const std::string& spec) {
  std::map<std::string, std::string> out;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return out;
  std::string_view rest(spec);
  rest.remove_prefix(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos) {
      out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<int> IntParam(const std::map<std::string, std::string>& p, const char* key) {
  const auto it = p.find(key);
  if (it == p.end() || it->second.empty()) return std::nullopt;
  int v = 0;
  for (char ch : it->second) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + (ch - '0');
    if (v > 100000) return std::nullopt;
  }
  return v;
}

// 2^e as a float, or nullopt where it is not exactly representable (below 2^-149 or >= 2^128).
std::optional<float> ExactPow2(int e) {
  if (e < -149 || e > 127) return std::nullopt;
  return std::ldexp(1.0f, e);
}

// scale[b] = 2^(int8(b) + offset) for the int8 exponent fields of bfp / bm / bl.
bool FillInt8ExponentScales(int offset, SeTables* t) {
  for (int b = 0; b < 256; ++b) {
    const std::optional<float> s = ExactPow2(static_cast<int8_t>(b) + offset);
    if (!s) return false;
    t->scale[b] = *s;
  }
  return true;
}

void FillMinifloat(const MinifloatCodec& codec, SeTables* t) {
  for (uint32_t c = 0; c < codec.num_codes(); ++c) t->raw[c] = static_cast<float>(codec.Decode(c));
}

bool SupportedBlock(int block) { return block == 16 || block == 32; }

std::optional<SeTables> BuildMx(const std::map<std::string, std::string>& p) {
  const std::optional<int> block = IntParam(p, "block");
  const auto elem = p.find("elem");
  if (!block || !SupportedBlock(*block) || elem == p.end()) return std::nullopt;
  SeTables t{};
  using S = MinifloatCodec::Specials;
  int offset = 0;  // element scaling folded into the scale (mxint8: k * 2^-6)
  if (elem->second == "fp4_e2m1") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kTable, 4, *block};
    FillMinifloat(MinifloatCodec(2, 1, S::kFinite), &t);
  } else if (elem->second == "fp6_e3m2") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kTable, 6, *block};
    FillMinifloat(MinifloatCodec(3, 2, S::kFinite), &t);
  } else if (elem->second == "fp6_e2m3") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kTable, 6, *block};
    FillMinifloat(MinifloatCodec(2, 3, S::kFinite), &t);
  } else if (elem->second == "fp8_e4m3") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kFp8E4m3, 8, *block};
    FillMinifloat(MinifloatCodec(4, 3, S::kOneNan), &t);
  } else if (elem->second == "fp8_e5m2") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kFp8E5m2, 8, *block};
    FillMinifloat(MinifloatCodec(5, 2, S::kIeee), &t);
  } else if (elem->second == "int8") {
    t.kind = {SeLayout::kBlocks, SeDecoder::kTwosInt8, 8, *block};
    for (int c = 0; c < 256; ++c) t.raw[c] = static_cast<float>(static_cast<int8_t>(c));
    offset = -6;
  } else {
    return std::nullopt;
  }
  // E8M0 (mx.h): 2^(b - 127), 0xFF = NaN.
  for (int b = 0; b < 255; ++b) t.scale[b] = *ExactPow2(b - 127 + offset);
  t.scale[255] = std::numeric_limits<float>::quiet_NaN();
  return t;
}

std::optional<SeTables> BuildBfp(const std::map<std::string, std::string>& p) {
  const std::optional<int> w = IntParam(p, "w");
  const std::optional<int> block = IntParam(p, "block");
  if (!w || !block || *w < 3 || *w > 8 || !SupportedBlock(*block)) return std::nullopt;
  SeTables t{};
  // w <= 4: a table lookup is the cheapest decode; wider mantissas convert as integers (an
  // AVX2 vpermps holds only 8 entries).
  t.kind = {SeLayout::kBlocks, *w <= 4 ? SeDecoder::kTable : SeDecoder::kSignMagInt, *w, *block};
  // x = (-1)^s * M * 2^(E - (w-1)) (block_fp.cc): raw = +-M, scale = 2^(E - (w-1)).
  const int mag_bits = *w - 1;
  for (int c = 0; c < (1 << *w); ++c) {
    const float m = static_cast<float>(c & ((1 << mag_bits) - 1));
    t.raw[c] = (c >> mag_bits) != 0 ? -m : m;
  }
  if (!FillInt8ExponentScales(-mag_bits, &t)) return std::nullopt;
  return t;
}

std::optional<SeTables> BuildBm(const std::map<std::string, std::string>& p) {
  const std::optional<int> e = IntParam(p, "e");
  const std::optional<int> m = IntParam(p, "m");
  const std::optional<int> block = IntParam(p, "block");
  if (!e || !m || !block || !SupportedBlock(*block) || *e < 1 || 1 + *e + *m > 8) {
    return std::nullopt;
  }
  const int bits = 1 + *e + *m;
  SeTables t{};
  if (bits < 3) return std::nullopt;
  if (bits <= 6) {
    t.kind = {SeLayout::kBlocks, SeDecoder::kTable, bits, *block};
  } else if (*e == 4 && *m == 3) {
    t.kind = {SeLayout::kBlocks, SeDecoder::kFp8E4m3Fin, 8, *block};
  } else {
    return std::nullopt;
  }
  // x = elem * 2^(S - emax) (block_minifloat.cc), elements MinifloatCodec(e, m, kFinite).
  const MinifloatCodec codec(*e, *m, MinifloatCodec::Specials::kFinite);
  FillMinifloat(codec, &t);
  if (!FillInt8ExponentScales(-codec.emax(), &t)) return std::nullopt;  // e <= 5
  return t;
}

std::optional<SeTables> BuildBl(const std::map<std::string, std::string>& p) {
  const std::optional<int> k = IntParam(p, "k");
  const std::optional<int> block = IntParam(p, "block");
  if (!k || !block || !SupportedBlock(*block) || *k < 2 || *k > 7 || *k == 6) return std::nullopt;
  SeTables t{};
  t.kind = {SeLayout::kBlocks, *k == 7 ? SeDecoder::kLog7 : SeDecoder::kTable, *k + 1, *block};
  // x = +-2^(c - (2^k - 1) + S), c = 0 is +-0 (block_log.cc): raw = +-2^(c - 2^k + 1) (>= 2^-126,
  // a float normal), scale = 2^S.
  const int top = (1 << *k) - 1;
  for (int c = 0; c < (1 << (*k + 1)); ++c) {
    const int mag = c & top;
    const float v = mag == 0 ? 0.0f : std::ldexp(1.0f, mag - top);
    t.raw[c] = (c >> *k) != 0 ? -v : v;
  }
  if (!FillInt8ExponentScales(0, &t)) return std::nullopt;
  return t;
}

std::optional<SeTables> BuildFp6Split(const std::map<std::string, std::string>& p) {
  const std::optional<int> e = IntParam(p, "e");
  if (!e || (*e != 2 && *e != 3)) return std::nullopt;
  SeTables t{};
  t.kind = {SeLayout::kFp6Split, SeDecoder::kTable, 6, 0};
  using S = MinifloatCodec::Specials;
  FillMinifloat(*e == 3 ? MinifloatCodec(3, 2, 3, S::kFinite) : MinifloatCodec(2, 3, 1, S::kFinite),
                &t);
  for (float& s : t.scale) s = 1.0f;  // the scale is per row (fp16), read by the kernel
  return t;
}

// scale_fold / fold_ok (SeTables): scale * 2^fold_exp where that is a float. Every finite scale
// is a power of two >= 2^-149 and fold_exp >= 0, so the product is exact unless it overflows.
void FillFoldedScales(SeTables* t) {
  t->fold_exp = SeFoldExp(t->kind.decoder);
  t->all_fold_ok = true;
  for (int b = 0; b < 256; ++b) {
    const float s = t->scale[b];
    const float folded = std::ldexp(s, t->fold_exp);
    const bool ok = std::isnan(s) || std::isfinite(folded);
    t->fold_ok[b] = ok ? 1 : 0;
    t->scale_fold[b] = ok ? folded : s;
    t->all_fold_ok = t->all_fold_ok && ok;
  }
}

std::optional<SeTables> BuildTablesOfFamily(const Format& format) {
  const std::string_view family = format.family();
  const std::map<std::string, std::string> p = SpecParams(format.spec());
  if (family == "mx") return BuildMx(p);
  if (family == "bfp") return BuildBfp(p);
  if (family == "bm") return BuildBm(p);
  if (family == "bl") return BuildBl(p);
  if (family == "fp6split") return BuildFp6Split(p);
  return std::nullopt;
}

// raw_half: fp16 bits of every raw value, and whether each converts back to the same float.
void FillHalfRaw(SeTables* t) {
  t->raw_half_exact = true;
  for (int c = 0; c < 256; ++c) {
    t->raw_half[c] = FloatToHalf(t->raw[c]);
    const float back = HalfToFloat(t->raw_half[c]);
    t->raw_half_exact = t->raw_half_exact && std::memcmp(&back, &t->raw[c], sizeof(float)) == 0;
  }
}

}  // namespace

std::optional<SeTables> BuildSharedExponentTables(const Format& format) {
  std::optional<SeTables> t = BuildTablesOfFamily(format);
  if (t) {
    FillFoldedScales(&*t);
    FillHalfRaw(&*t);
  }
  return t;
}

const SeTables& SharedExponentTablesFor(const Format& format) {
  // One entry per distinct spec, never freed (a handful per process). The thread-local memo
  // compares the spec too, so a Format destroyed and another allocated at its address cannot
  // pick up stale tables.
  struct Memo {
    const Format* format = nullptr;
    std::string spec;
    const SeTables* tables = nullptr;
  };
  thread_local Memo memo;
  std::string spec = format.spec();
  if (memo.format == &format && memo.tables != nullptr && memo.spec == spec) return *memo.tables;
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<SeTables>> cache;
  const SeTables* tables;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::unique_ptr<SeTables>& slot = cache[spec];
    if (!slot) {
      std::optional<SeTables> built = BuildSharedExponentTables(format);
      LOWBIT_CHECK(built.has_value());  // run() is only registered for formats that build
      slot = std::make_unique<SeTables>(*built);
    }
    tables = slot.get();
  }
  memo = {&format, std::move(spec), tables};
  return *tables;
}

float SeFp6SplitRowScale(const uint8_t* row) {
  return HalfToFloat(static_cast<uint16_t>(row[0] | (row[1] << 8)));
}

}  // namespace lowbit::kernels
