// Row-interleaved Q8 kernels (kernels/interleaved.h): which formats get the layout, the load-time
// repack, and the kernel lookup. Portable code (no ISA flags): it runs once per matrix at load.
//
// Formats are matched by family() and spec parameters, and their integer grids are derived from
// the formats' own decoders:
//   * GGUF q4_0 / q4_1 / q5_0 / q5_1 / q8_0 and int 4/8-bit (group % 32 == 0, row, tensor): the
//     fused Traits classes of block_traits.h give each unit's offset-binary codes and its fp16
//     scale / min fields (stored back as the same fp16 bits);
//   * GGUF mxfp4 (ggml's block_mxfp4: E2M1 doubled, scale 2^(e - 128));
//   * nf4 with blocks of 32, 64 or 128: its table x 2^14 rounded, in two byte tables (Nf4Desc);
//   * shared-exponent block formats (mx, bfp, bm, bl with blocks of 16 / 32): from their SeTables,
//     raw(code) * M must be an integer v in [-128, 127] for one power of two M (mxfp4: M = 2,
//     bfp / mxint8: M = 1) and scale(b) / M = 2^(x(b) - bias) for every shared byte b (x = b or
//     int8(b)), with at most one NaN byte. Anything else gets no entry.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "formats/minifloat_codec.h"
#include "formats/nf4.h"
#include "kernels/block_traits.h"
#include "kernels/fused_table.h"
#include "kernels/interleaved.h"
#include "kernels/kernel_families.h"
#include "kernels/shared_exponent_desc.h"

namespace lowbit::kernels {
namespace {

bool Has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The fused-kernel id of a GGUF / int format this layout serves, or kCount.
FusedId TraitsIdOf(const Format& f) {
  const std::string spec = f.spec();
  if (f.family() == "gguf") {
    const std::string type = spec.substr(spec.find('=') + 1);
    if (type == "q4_0") return FusedId::kQ4_0;
    if (type == "q4_1") return FusedId::kQ4_1;
    if (type == "q5_0") return FusedId::kQ5_0;
    if (type == "q5_1") return FusedId::kQ5_1;
    if (type == "q8_0") return FusedId::kQ8_0;
    return FusedId::kCount;
  }
  if (f.family() == "int") {
    const int64_t group = f.block_size();
    if (group > 0 && group % kUnit != 0) return FusedId::kCount;
    const bool asym = Has(spec, "mode=asym");
    if (Has(spec, "bits=4,")) return asym ? FusedId::kInt4Asym : FusedId::kInt4Sym;
    if (Has(spec, "bits=8,")) return asym ? FusedId::kInt8Asym : FusedId::kInt8Sym;
  }
  return FusedId::kCount;
}

template <class T>
IlDesc TraitsDesc(int bits) {
  IlDesc d;
  d.bits = bits;
  d.max_code = (1 << bits) - 1;
  d.zero = T::kZero;
  d.has_min = T::kHasMin ? 1 : 0;
  d.scale = IlScale::kF16;
  return d;
}

std::optional<IlDesc> TraitsDescOf(FusedId id) {
  switch (id) {
    case FusedId::kQ4_0:
      return TraitsDesc<Q4_0Traits>(4);
    case FusedId::kQ4_1:
      return TraitsDesc<Q4_1Traits>(4);
    case FusedId::kQ5_0:
      return TraitsDesc<Q5_0Traits>(5);
    case FusedId::kQ5_1:
      return TraitsDesc<Q5_1Traits>(5);
    case FusedId::kQ8_0:
      return TraitsDesc<Q8_0Traits>(8);
    case FusedId::kInt4Sym:
      return TraitsDesc<IntTraits<4, false>>(4);
    case FusedId::kInt4Asym:
      return TraitsDesc<IntTraits<4, true>>(4);
    case FusedId::kInt8Sym:
      return TraitsDesc<IntTraits<8, false>>(8);
    case FusedId::kInt8Asym:
      return TraitsDesc<IntTraits<8, true>>(8);
    default:
      return std::nullopt;
  }
}

// The traits formats' layout; int formats whose fields are shared by >= 128 elements (group a
// multiple of 128, row, tensor) store one set of fields per 4 blocks (IlDesc::unit_blocks).
std::optional<IlDesc> TraitsDescFor(const Format& f, FusedId id) {
  std::optional<IlDesc> d = TraitsDescOf(id);
  if (d && f.family() == "int" && (f.block_size() <= 0 || f.block_size() % (4 * kUnit) == 0)) {
    d->unit_blocks = 4;
  }
  return d;
}

// Shared-exponent formats: the integer grid and the exponent rule (file comment).
struct SeGrid {
  IlDesc desc;
  int bits = 0, block = 0;
  int shift = 0;            // M = 2^shift
  int32_t v[256] = {};      // integer value of each code (0 for NaN codes)
  bool nan_code[256] = {};  // lut8: codes the format decodes to NaN (their block's scale is NaN)
  bool has_nan_codes = false;
};

// lut8 (interleaved.h): 8-bit sign-magnitude codes (raw[c | 128] = -raw[c], NaN codes allowed)
// whose magnitudes are integers times 2^-shift for some shift <= 12, small enough that a 32-term
// Q8 dot product stays in int32. False otherwise.
bool SignMagnitudeGrid8(const float* raw, SeGrid* g) {
  constexpr double kMaxMagnitude = 2147483647.0 / (127.0 * 32.0);
  for (int c = 0; c < 128; ++c) {
    const float p = raw[c], n = raw[c | 128];
    if (std::isnan(p) != std::isnan(n)) return false;
    if (!std::isnan(p) && !(n == -p && std::signbit(n) != std::signbit(p))) return false;
  }
  for (int s = 0; s <= 12; ++s) {
    bool ok = true;
    for (int c = 0; c < 128 && ok; ++c) {
      if (std::isnan(raw[c])) continue;
      const double v = std::ldexp(double(raw[c]), s);
      ok = std::isfinite(v) && v == std::nearbyint(v) && v >= 0.0 && v <= kMaxMagnitude;
    }
    if (!ok) continue;
    g->bits = 8;
    g->shift = s;
    IlDesc& d = g->desc;
    d.bits = 8;
    d.zero = 0;
    int32_t vmax = 0;
    for (int c = 0; c < 256; ++c) {
      g->nan_code[c] = std::isnan(raw[c]);
      g->has_nan_codes = g->has_nan_codes || g->nan_code[c];
      g->v[c] = g->nan_code[c] ? 0 : static_cast<int32_t>(std::ldexp(double(raw[c]), s));
      vmax = std::max(vmax, g->v[c]);
    }
    d.lut8 = vmax < (1 << 8) ? 1 : vmax < (1 << 16) ? 2 : 3;
    if (d.lut8 == 1) return false;  // a plain 8-bit grid (handled before) would have fit
    for (int j = 0; j < d.lut8; ++j)
      for (int c = 0; c < 128; ++c) d.lut128[j][c] = static_cast<uint8_t>(g->v[c] >> (8 * j));
    return true;
  }
  return false;
}

// The integer grid of an element table raw[0 .. 2^bits): the smallest shift with every
// raw * 2^shift an integer v in [-128, 127] (any code width), else, for 6-bit codes, the smallest
// with every v an integer and v - vmin <= 16 * 255 + 15 (two byte tables); the codes' storage
// (direct, lut16, lut6 1 or 2) follows. False when neither exists.
bool ElementGrid(const float* raw, int bits, SeGrid* g) {
  const int n_codes = 1 << bits;
  auto grid_ok = [&](int s, double lo, double hi) {
    for (int c = 0; c < n_codes; ++c) {
      const double v = std::ldexp(double(raw[c]), s);
      if (!(std::isfinite(v) && v == std::nearbyint(v) && v >= lo && v <= hi)) return false;
    }
    return true;
  };
  int shift = -1;
  for (int s = 0; s <= 12 && shift < 0; ++s) {
    if (grid_ok(s, -128.0, 127.0)) shift = s;
  }
  for (int s = 0; s <= 12 && shift < 0 && bits == 6; ++s) {
    if (grid_ok(s, -2048.0, 2047.0)) shift = s;
  }
  if (shift < 0) return bits == 8 && SignMagnitudeGrid8(raw, g);
  g->bits = bits;
  g->shift = shift;
  int vmin = 0, vmax = 0;
  for (int c = 0; c < n_codes; ++c) {
    g->v[c] = static_cast<int32_t>(std::ldexp(double(raw[c]), shift));
    vmin = std::min(vmin, g->v[c]);
    vmax = std::max(vmax, g->v[c]);
  }
  IlDesc& d = g->desc;
  d.zero = -vmin;
  const int umax = vmax + d.zero;
  d.max_code = umax;
  if (bits <= 4) {
    if (umax > 255) return false;
    d.bits = 4;
    if (umax > 15) {
      d.lut = 1;
      for (int c = 0; c < 16; ++c)
        d.lut16[c] = static_cast<uint8_t>(c < n_codes ? g->v[c] + d.zero : d.zero);
    }
  } else if (bits <= 6) {
    d.bits = umax <= 31 ? 5 : 6;  // 5-bit codes (q5, bfp5, bm5...) keep a 1-bit plane only
    if (umax > 63) {
      if (bits != 6 || umax > 16 * 255 + 15) return false;
      d.lut6 = umax > 255 ? 2 : 1;
      for (int c = 0; c < 64; ++c) {
        const int u = g->v[c] + d.zero;
        d.lut64[c] = static_cast<uint8_t>(d.lut6 == 2 ? u & 15 : u);
        d.lut64_hi[c] = static_cast<uint8_t>(d.lut6 == 2 ? u >> 4 : 0);
      }
    }
  } else {
    if (umax > 255) return false;
    d.bits = 8;
  }
  return true;
}

std::optional<SeGrid> SeGridOf(const Format& f) {
  const std::optional<SeTables> t = BuildSharedExponentTables(f);
  if (!t || t->kind.layout != SeLayout::kBlocks) return std::nullopt;
  SeGrid g;
  if (!ElementGrid(t->raw, t->kind.bits, &g)) return std::nullopt;
  g.block = t->kind.block;
  if (g.block != 16 && g.block != 32) return std::nullopt;
  const int shift = g.shift;
  IlDesc& d = g.desc;
  d.segs = g.block == 16 ? 2 : 1;
  d.scale = IlScale::kExp;
  // scale(b) / 2^shift = 2^(x(b) - bias), with x(b) = b or int8(b).
  for (int sgn = 0; sgn <= 1; ++sgn) {
    auto x = [&](int b) { return sgn ? int(static_cast<int8_t>(b)) : b; };
    if (!(t->scale[1] > 0.0f) || !std::isfinite(t->scale[1])) return std::nullopt;
    int e1 = 0;
    const double m1 = std::frexp(double(t->scale[1]), &e1);
    if (m1 != 0.5) return std::nullopt;
    const int bias = x(1) - ((e1 - 1) - shift);
    int nan_byte = -1;
    bool ok = true;
    for (int b = 0; b < 256 && ok; ++b) {
      if (std::isnan(t->scale[b])) {
        ok = nan_byte < 0;
        nan_byte = b;
        continue;
      }
      const int e = x(b) - bias;
      ok = e >= -149 && e <= 127 &&
           std::ldexp(double(std::ldexp(1.0f, e)), shift) == double(t->scale[b]);
    }
    if (ok && g.has_nan_codes && nan_byte < 0) return std::nullopt;  // no way to say NaN
    if (ok) {
      d.exp_signed = sgn;
      d.bias = bias;
      d.nan_byte = nan_byte;
      return g;
    }
  }
  return std::nullopt;
}

// A stored code whose weight is 0: the one padding rows, and blocks past a row, are filled with.
uint8_t PadCode(const IlDesc& d) {
  for (int c = 0; c < (d.lut6 ? 64 : d.lut ? 16 : 256); ++c) {
    if (d.Value(c) == 0) return static_cast<uint8_t>(c);
  }
  return static_cast<uint8_t>(d.zero);  // unreachable: every grid holds 0 (checked by the caller)
}

// One row's units: codes c (32 per unit), scale fields (segs per unit), min fields (1 per unit).
using RowFn = std::function<void(int64_t r, uint8_t* c, uint32_t* scale, uint16_t* min)>;

template <class T>
RowFn TraitsRowFn(const Format& f, const uint8_t* packed, int64_t cols) {
  auto traits = std::make_shared<T>(f, cols);
  ReadTensorHeader(*traits, packed);
  const int64_t units = (cols + kUnit - 1) / kUnit;
  return [traits, packed, units](int64_t r, uint8_t* c, uint32_t* scale, uint16_t* min) {
    const uint8_t* row = traits->Row(packed, r);
    alignas(64) uint8_t scratch[64];
    for (int64_t u = 0; u < units; ++u) {
      UnitRef ref;
      traits->Unit(row, u, &ref, scratch);
      UnpackCodes<T::kKind, T::kXor>(ref, c + 32 * u);
      scale[u] = FloatToHalf(ref.scale[0]);
      min[u] = FloatToHalf(ref.min[0]);
    }
  };
}

RowFn TraitsRowFnOf(FusedId id, const Format& f, const uint8_t* packed, int64_t cols) {
  switch (id) {
    case FusedId::kQ4_0:
      return TraitsRowFn<Q4_0Traits>(f, packed, cols);
    case FusedId::kQ4_1:
      return TraitsRowFn<Q4_1Traits>(f, packed, cols);
    case FusedId::kQ5_0:
      return TraitsRowFn<Q5_0Traits>(f, packed, cols);
    case FusedId::kQ5_1:
      return TraitsRowFn<Q5_1Traits>(f, packed, cols);
    case FusedId::kQ8_0:
      return TraitsRowFn<Q8_0Traits>(f, packed, cols);
    case FusedId::kInt4Sym:
      return TraitsRowFn<IntTraits<4, false>>(f, packed, cols);
    case FusedId::kInt4Asym:
      return TraitsRowFn<IntTraits<4, true>>(f, packed, cols);
    case FusedId::kInt8Sym:
      return TraitsRowFn<IntTraits<8, false>>(f, packed, cols);
    case FusedId::kInt8Asym:
      return TraitsRowFn<IntTraits<8, true>>(f, packed, cols);
    default:
      return nullptr;
  }
}

RowFn SeRowFn(const SeGrid& g, const Format& f, const uint8_t* packed, int64_t rows, int64_t cols) {
  const uint8_t* base = packed + f.HeaderBytes(rows, cols);
  const int64_t row_bytes = f.RowBytes(cols);
  const int64_t block_bytes = 1 + g.block * g.bits / 8;
  const int64_t n_blocks = (cols + g.block - 1) / g.block;
  const int64_t units = (cols + kUnit - 1) / kUnit;
  return [=](int64_t r, uint8_t* c, uint32_t* scale, uint16_t* /*min*/) {
    const uint8_t* row = base + r * row_bytes;
    auto byte_at = [&](int64_t i) -> uint32_t { return i < row_bytes ? row[i] : 0u; };
    const IlDesc& d = g.desc;
    const int per_unit = kUnit / g.block;
    for (int64_t u = 0; u < units; ++u) {
      for (int s = 0; s < per_unit; ++s) {
        const int64_t blk = u * per_unit + s;
        uint8_t* out = c + 32 * u + g.block * s;
        if (blk >= n_blocks) {  // a block of 16 past the row: zero weights, scale 2^0
          std::memset(out, PadCode(d), static_cast<size_t>(g.block));
          scale[u * per_unit + s] = static_cast<uint32_t>((d.bias + 256) & 0xFF);
          continue;
        }
        const int64_t at = blk * block_bytes;
        scale[u * per_unit + s] = byte_at(at);
        for (int i = 0; i < g.block; ++i) {
          const int64_t bit = int64_t(i) * g.bits;
          const uint32_t word = byte_at(at + 1 + bit / 8) | (byte_at(at + 2 + bit / 8) << 8);
          const uint32_t code = (word >> (bit % 8)) & ((1u << g.bits) - 1);
          const bool own_code = d.lut != 0 || d.lut6 != 0 || d.lut8 != 0;  // kernel maps codes
          out[i] =
              static_cast<uint8_t>(own_code ? code : static_cast<uint32_t>(g.v[code] + d.zero));
          if (g.nan_code[code]) scale[u * per_unit + s] = static_cast<uint32_t>(d.nan_byte);
        }
      }
    }
  };
}

// GGUF MXFP4 (formats/gguf_types.cc): 17-byte blocks [E8M0 e][qs[16]], element j < 16 the low
// nibble of qs[j], j >= 16 the high nibble of qs[j - 16]; x = 2^(e - 128) * kv[code] with
// kv = E2M1 doubled = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, ..., -12}; no NaN exponent.
bool IsGgufMxfp4(const Format& f) { return f.family() == "gguf" && f.spec() == "gguf:type=mxfp4"; }

IlDesc GgufMxfp4Desc() {
  static constexpr int8_t kKv[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  IlDesc d;
  d.bits = 4;
  d.lut = 1;
  d.zero = 12;
  for (int c = 0; c < 16; ++c) d.lut16[c] = static_cast<uint8_t>(kKv[c] + 12);
  d.segs = 1;
  d.scale = IlScale::kExp;
  d.bias = 128;
  return d;
}

RowFn GgufMxfp4RowFn(const Format& f, const uint8_t* packed, int64_t cols) {
  const int64_t row_bytes = f.RowBytes(cols);
  const int64_t units = (cols + kUnit - 1) / kUnit;
  return [=](int64_t r, uint8_t* c, uint32_t* scale, uint16_t* /*min*/) {
    const uint8_t* row = packed + r * row_bytes;
    for (int64_t u = 0; u < units; ++u) {
      const uint8_t* blk = row + 17 * u;
      scale[u] = blk[0];
      for (int j = 0; j < 16; ++j) {
        c[32 * u + j] = blk[1 + j] & 15;
        c[32 * u + 16 + j] = blk[1 + j] >> 4;
      }
    }
  };
}

// fp6split (formats/fp6_split.cc): rows [fp16 scale][2-bit plane][4-bit plane], w = raw(code) *
// scale; code i = (2-bit piece i) << 4 | (4-bit piece i). The unit scale field is the row's fp16
// scale and scale_unit = 2^-shift brings the integer grid back to raw values.
std::optional<SeGrid> Fp6SplitGridOf(const Format& f) {
  const std::optional<SeTables> t = BuildSharedExponentTables(f);
  if (!t || t->kind.layout != SeLayout::kFp6Split) return std::nullopt;
  SeGrid g;
  if (!ElementGrid(t->raw, 6, &g) || g.desc.lut6 == 0) return std::nullopt;
  g.block = 32;
  g.desc.segs = 1;
  g.desc.scale = IlScale::kF16;
  g.desc.scale_unit = std::ldexp(1.0f, -g.shift);
  return g;
}

RowFn Fp6SplitRowFn(const Format& f, const uint8_t* packed, int64_t rows, int64_t cols) {
  const uint8_t* base = packed + f.HeaderBytes(rows, cols);
  const int64_t row_bytes = f.RowBytes(cols);
  const int64_t hi_bytes = (cols + 3) / 4;
  const int64_t units = (cols + kUnit - 1) / kUnit;
  return [=](int64_t r, uint8_t* c, uint32_t* scale, uint16_t* /*min*/) {
    const uint8_t* row = base + r * row_bytes;
    const uint16_t row_scale = static_cast<uint16_t>(row[0] | (row[1] << 8));
    const uint8_t* hi = row + 2;
    const uint8_t* lo = row + 2 + hi_bytes;
    for (int64_t u = 0; u < units; ++u) scale[u] = row_scale;
    for (int64_t i = 0; i < units * kUnit; ++i) {
      // Past cols: code 0 (+0), whatever the activations there (Q8 blocks pad with q = 0).
      c[i] = i < cols ? static_cast<uint8_t>((((hi[i / 4] >> (2 * (i % 4))) & 3) << 4) |
                                             ((lo[i / 2] >> (4 * (i % 2))) & 15))
                      : 0;
    }
  };
}

// nf4 (formats/nf4.h) with blocks of 32, 64 or 128: one absmax A per block (its f32 or fp16 bits
// are the unit's scale field) and 4-bit codes into kNf4Values, which are no integer grid. The
// layout holds u = round(v * 2^14) + 2^14 (0 .. 2^15) in two byte tables, lut16 the low byte and
// lut16_hi the high one, with zero = 2^14 and scale_unit = 2^-14 (applied to the integer sum): a
// weight is A * round(v * 2^14) * 2^-14, within table_rel_error (1.58e-4, at the value
// -0.0911) of A * v. That is 2^-15 of the block's absmax at most, ten times below what
// the Q8 activations round away.
constexpr int kNf4GridShift = 14;

bool IsNf4Grid(const Format& f) {
  const int64_t n = f.block_size();
  return f.family() == "nf4" && (n == 32 || n == 64 || n == 128);
}

IlDesc Nf4Desc(const Format& f) {
  IlDesc d;
  d.bits = 4;
  d.lut = 1;
  d.lut2 = 1;
  d.zero = 1 << kNf4GridShift;
  d.max_code = 15;
  for (int c = 0; c < 16; ++c) {
    const double v = kNf4Values[c];
    const long q = std::lround(std::ldexp(v, kNf4GridShift));
    const int u = static_cast<int>(q) + d.zero;
    LOWBIT_CHECK(u >= 0 && u < (1 << 16) && (v != 0.0 || q == 0));
    d.lut16[c] = static_cast<uint8_t>(u & 255);
    d.lut16_hi[c] = static_cast<uint8_t>(u >> 8);
    if (v != 0.0) {
      const double err = std::fabs(std::ldexp(double(q), -kNf4GridShift) - v) / std::fabs(v);
      d.table_rel_error = std::max(d.table_rel_error, err);
    }
  }
  d.segs = 1;
  d.scale = Nf4ScaleBytes(f) == 4 ? IlScale::kF32 : IlScale::kF16;
  d.scale_unit = std::ldexp(1.0f, -kNf4GridShift);
  d.unit_blocks = static_cast<int32_t>(f.block_size() / kUnit);
  return d;
}

RowFn Nf4RowFn(const Format& f, const uint8_t* packed, int64_t cols) {
  const int64_t n = f.block_size(), block_bytes = f.block_bytes();
  const int64_t scale_bytes = Nf4ScaleBytes(f), row_bytes = f.RowBytes(cols);
  const int64_t n_blocks = (cols + n - 1) / n;
  return [=](int64_t r, uint8_t* c, uint32_t* scale, uint16_t* /*min*/) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint8_t* blk = packed + r * row_bytes + b * block_bytes;
      uint32_t field = 0;
      for (int64_t k = 0; k < scale_bytes; ++k) field |= uint32_t{blk[k]} << (8 * k);
      for (int64_t j = 0; j < n / kUnit; ++j) scale[b * (n / kUnit) + j] = field;
      for (int64_t k = 0; k < n; ++k) {
        // Past cols: code 7 (0.0).
        const int code = b * n + k >= cols ? 7 : Nf4CodeAt(blk + scale_bytes, k);
        c[b * n + k] = static_cast<uint8_t>(code);
      }
    }
  };
}

}  // namespace

std::optional<IlDesc> InterleavedDescFor(const Format& format) {
  const FusedId id = TraitsIdOf(format);
  if (id != FusedId::kCount) return TraitsDescFor(format, id);
  if (IsGgufMxfp4(format)) return GgufMxfp4Desc();
  if (IsNf4Grid(format)) return Nf4Desc(format);
  if (std::optional<SeGrid> g = SeGridOf(format)) return g->desc;
  if (std::optional<SeGrid> g = Fp6SplitGridOf(format)) return g->desc;
  return std::nullopt;
}

std::vector<uint8_t> InterleavedRepack(const Format& format, const uint8_t* packed, int64_t rows,
                                       int64_t cols) {
  RowFn row_fn;
  IlDesc d;
  const FusedId id = TraitsIdOf(format);
  std::optional<SeGrid> grid;
  if (id != FusedId::kCount) {
    d = *TraitsDescFor(format, id);
    row_fn = TraitsRowFnOf(id, format, packed, cols);
  } else if (IsGgufMxfp4(format)) {
    d = GgufMxfp4Desc();
    row_fn = GgufMxfp4RowFn(format, packed, cols);
  } else if (IsNf4Grid(format)) {
    d = Nf4Desc(format);
    row_fn = Nf4RowFn(format, packed, cols);
  } else if ((grid = SeGridOf(format))) {
    d = grid->desc;
    row_fn = SeRowFn(*grid, format, packed, rows, cols);
  } else {
    grid = Fp6SplitGridOf(format);
    LOWBIT_CHECK(grid.has_value());
    d = grid->desc;
    row_fn = Fp6SplitRowFn(format, packed, rows, cols);
  }
  const int64_t ub = d.unit_blocks;
  const int64_t units = (cols + ub * kUnit - 1) / (ub * kUnit);
  const int64_t blocks = units * ub;  // per row, the last unit's missing blocks padded
  const int64_t groups = (rows + kIlRows - 1) / kIlRows;
  const int64_t unit_bytes = d.UnitBytes();
  std::vector<uint8_t> out(static_cast<size_t>(kIlHeaderBytes + groups * units * unit_bytes), 0);
  IlHeader h{d, rows, cols, units, groups};
  std::memcpy(out.data(), &h, sizeof h);
  // Padding rows and blocks: zero weights (code = zero, or the LUT entry that maps to it), scale
  // 0 / 2^0.
  const uint8_t pad_code = PadCode(d);
  const uint32_t pad_scale =
      d.scale == IlScale::kExp ? static_cast<uint32_t>((d.bias + 256) & 0xFF) : 0;
  const int64_t real_blocks = (cols + kUnit - 1) / kUnit;
  std::vector<uint8_t> c(static_cast<size_t>(kIlRows * blocks * 32));
  std::vector<uint32_t> sc(static_cast<size_t>(kIlRows * blocks * d.segs));
  std::vector<uint16_t> mn(static_cast<size_t>(kIlRows * blocks));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < kIlRows; ++i) {
      const int64_t r = g * kIlRows + i;
      uint8_t* ci = c.data() + i * blocks * 32;
      uint32_t* si = sc.data() + i * blocks * d.segs;
      uint16_t* mi = mn.data() + i * blocks;
      std::memset(ci, pad_code, static_cast<size_t>(blocks * 32));
      for (int64_t k = 0; k < blocks * d.segs; ++k) si[k] = pad_scale;
      for (int64_t k = 0; k < blocks; ++k) mi[k] = 0;
      if (r < rows) row_fn(r, ci, si, mi);
      // A unit of several blocks keeps its first block's fields: the format shares them.
      for (int64_t b = 0; b < real_blocks && ub > 1 && r < rows; ++b) {
        LOWBIT_CHECK(si[b] == si[b - b % ub] && mi[b] == mi[b - b % ub]);
      }
    }
    for (int64_t u = 0; u < units; ++u) {
      uint8_t* p0 = out.data() + kIlHeaderBytes + (g * units + u) * unit_bytes;
      for (int64_t i = 0; i < kIlRows; ++i) {
        for (int64_t k = 0; k < ub; ++k) {
          uint8_t* p = p0 + k * d.CodeBytes();
          const uint8_t* e = c.data() + i * blocks * 32 + (u * ub + k) * 32;  // row i's 32 codes
          if (d.bits == 8) {
            for (int j = 0; j < 8; ++j)
              for (int q = 0; q < 4; ++q) p[64 * j + 4 * i + q] = e[4 * j + q];
            continue;
          }
          for (int j = 0; j < 4; ++j)
            for (int q = 0; q < 4; ++q)
              p[64 * j + 4 * i + q] =
                  static_cast<uint8_t>((e[8 * j + q] & 15) | ((e[8 * j + 4 + q] & 15) << 4));
          if (d.bits == 5) {
            for (int v = 0; v < 8; ++v)
              for (int q = 0; q < 4; ++q)
                p[256 + 4 * i + q] |= static_cast<uint8_t>(((e[4 * v + q] >> 4) & 1) << v);
          }
          if (d.bits == 6) {
            for (int v = 0; v < 8; ++v)
              for (int q = 0; q < 4; ++q)
                p[256 + 64 * (v / 4) + 4 * i + q] |=
                    static_cast<uint8_t>(((e[4 * v + q] >> 4) & 3) << (2 * (v % 4)));
          }
        }
        const int64_t b0 = u * ub;  // the unit's first block: its fields serve the unit
        uint8_t* s = p0 + ub * d.CodeBytes();
        for (int seg = 0; seg < d.segs; ++seg) {
          const uint32_t field = sc[static_cast<size_t>(i * blocks * d.segs + b0 * d.segs + seg)];
          const int64_t fb = d.ScaleFieldBytes();  // little-endian, the format's own bits
          for (int64_t k = 0; k < fb; ++k)
            s[16 * fb * seg + fb * i + k] = static_cast<uint8_t>(field >> (8 * k));
        }
        if (d.has_min) {
          uint8_t* m = s + d.segs * 16 * d.ScaleFieldBytes();
          const uint16_t field = mn[static_cast<size_t>(i * blocks + b0)];
          m[2 * i] = static_cast<uint8_t>(field);
          m[2 * i + 1] = static_cast<uint8_t>(field >> 8);
        }
      }
    }
  }
  return out;
}

void IlHalfSums(const ActivationsQ8& x, int64_t t0, int64_t n_tokens, std::vector<int32_t>* out) {
  const int64_t units = x.blocks_per_row;
  out->resize(static_cast<size_t>(n_tokens * units * 2));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t u = 0; u < units; ++u) {
      const Q8Block32& b = x.blocks[static_cast<size_t>((t0 + t) * units + u)];
      int32_t s0 = 0;
      for (int k = 0; k < 16; ++k) s0 += b.q[k];
      (*out)[static_cast<size_t>((t * units + u) * 2)] = s0;
      (*out)[static_cast<size_t>((t * units + u) * 2 + 1)] = b.sum - s0;
    }
  }
}

std::optional<KernelEntry> LookupInterleavedKernel(const Format& format, Isa isa) {
  if (isa > MaxSupportedIsa()) isa = MaxSupportedIsa();
  if (isa == Isa::kScalar) return std::nullopt;
  const std::optional<IlDesc> d = InterleavedDescFor(format);
  if (!d) return std::nullopt;
  for (int level = static_cast<int>(isa); level >= static_cast<int>(Isa::kAvx2); --level) {
    const Isa at = static_cast<Isa>(level);
    // The VBMI variant first where it exists: it is the faster one for the formats it takes.
    RowRangeFn fn = at == Isa::kAvx512 && CpuHasAvx512Vbmi() ? InterleavedVbmiFn(*d) : nullptr;
    const bool vbmi = fn != nullptr;
    if (fn == nullptr) fn = at == Isa::kAvx512 ? InterleavedAvx512Fn(*d) : InterleavedAvx2Fn(*d);
    if (fn == nullptr) continue;
    // "il16.<bits>[l[v]|l2v|t|t2|m<parts>][u<blocks>].<f16|f32|exp[s]>.s<segs>[.min].<isa>.q8"
    // (lv: the table by vpermb; l2v: nf4's two tables), kept for the process's lifetime.
    std::string name = "il16." + std::to_string(d->bits);
    if (d->lut) name += d->lut2 ? "l2v" : vbmi ? "lv" : "l";
    if (d->lut6) name += d->lut6 == 1 ? "t" : "t2";
    if (d->lut8 >= 2) name.append("m").append(std::to_string(d->lut8));
    if (d->unit_blocks > 1) name.append("u").append(std::to_string(d->unit_blocks));
    name += d->scale == IlScale::kF16   ? ".f16"
            : d->scale == IlScale::kF32 ? ".f32"
            : d->exp_signed             ? ".exps"
                                        : ".exp";
    name.append(".s").append(std::to_string(d->segs)).append(d->has_min ? ".min" : "");
    name.append(".").append(IsaName(at)).append(".q8");
    static std::mutex mutex;
    static std::deque<std::string> names;
    const char* stored = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (const std::string& n : names) {
        if (n == name) stored = n.c_str();
      }
      if (stored == nullptr) stored = names.emplace_back(std::move(name)).c_str();
    }
    KernelEntry e;
    e.name = stored;
    e.isa = at;
    e.run = fn;
    e.repack = &InterleavedRepack;
    e.wants_q8 = true;
    e.row_granule = kIlRows;
    e.splits_offset = d->has_min != 0;
    e.weight_rel_error = d->table_rel_error;
    return e;
  }
  return std::nullopt;
}

}  // namespace lowbit::kernels
