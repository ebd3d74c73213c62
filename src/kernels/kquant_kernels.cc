// The k-quant interleaved kernels (kernels/kquant_kernels.h): which formats they serve, the
// load-time repack, the scalar reference level and the kernel lookup. Portable code, no ISA flags.
#include "kernels/kquant_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "formats/gguf_kquants.h"
#include "kernels/interleaved.h"
#include "kernels/kernel_families.h"
#include "lowbit/status.h"

namespace lowbit::kernels {
namespace {

// Writes the 32 codes e[0..31] of one unit of row r (r < 16) into the 4-bit interleaved layout
// at p (4 vectors of 64 bytes), and for 6-bit codes their high bits into the 2 vectors at p + 256.
void PutUnitCodes(const uint8_t* e, int64_t r, bool six, uint8_t* p) {
  for (int v = 0; v < 4; ++v) {
    for (int i = 0; i < 4; ++i) {
      p[64 * v + 4 * r + i] =
          static_cast<uint8_t>((e[8 * v + i] & 15) | ((e[8 * v + 4 + i] & 15) << 4));
    }
  }
  if (!six) return;
  for (int g = 0; g < 8; ++g) {
    for (int i = 0; i < 4; ++i) {
      p[256 + 64 * (g / 4) + 4 * r + i] |=
          static_cast<uint8_t>(((e[4 * g + i] >> 4) & 3) << (2 * (g % 4)));
    }
  }
}

// One q4_k super-block (144 bytes) of row r into record p.
void PutQ4K(const uint8_t* blk, int64_t r, uint8_t* p) {
  std::memcpy(p + 2 * r, blk, 2);           // d
  std::memcpy(p + 32 + 2 * r, blk + 2, 2);  // dmin
  const uint8_t* qs = blk + 16;
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    gguf::UnpackQ4KScaleMin(blk + 4, j, &sc, &m);
    p[64 + 16 * j + r] = static_cast<uint8_t>(sc);
    p[192 + 16 * j + r] = static_cast<uint8_t>(m);
    uint8_t e[32];
    for (int k = 0; k < 32; ++k) e[k] = (qs[32 * (j / 2) + k] >> (4 * (j % 2))) & 15;
    PutUnitCodes(e, r, false, p + 320 + 256 * j);
  }
}

// One q6_k super-block (210 bytes) of row r into record p (element order: DecodeQ6K).
void PutQ6K(const uint8_t* blk, int64_t r, uint8_t* p) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  for (int j = 0; j < 8; ++j) {
    uint8_t e[32];
    for (int k = 0; k < 32; ++k) {
      const int i = 32 * j + k, h = i / 128, rr = i % 128;
      const int low4 = (ql[64 * h + rr % 64] >> (4 * (rr / 64))) & 15;
      const int high2 = (qh[32 * h + rr % 32] >> (2 * (rr / 32))) & 3;
      e[k] = static_cast<uint8_t>(low4 | (high2 << 4));
    }
    PutUnitCodes(e, r, true, p + 384 * j);
  }
  for (int b = 0; b < 16; ++b) p[3072 + 16 * b + r] = blk[192 + b];
  std::memcpy(p + 3328 + 2 * r, blk + 208, 2);
}

float HalfBits(const uint8_t* p) { return HalfToFloat(gguf::LoadU16(p)); }

// The reference level: per lane, exactly the operations of the header comment (std::fma).
void RunScalarQ4K(const MatmulArgs& a, const KqHeader& h, int64_t r0, int64_t r1) {
  const uint8_t* base = a.w + kKqHeaderBytes;
  const int64_t units = a.x_q8->blocks_per_row;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kKqRows, lane = r % kKqRows;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const Q8Block32* xb = a.x_q8->blocks.data() + t * units;
      float acc = 0.0f;
      for (int64_t s = 0; s < h.sblocks; ++s) {
        const uint8_t* p = base + (g * h.sblocks + s) * kKqQ4KRecord;
        float accs = 0.0f, accm = 0.0f;
        for (int j = 0; j < 8 && 8 * s + j < units; ++j) {
          const Q8Block32& b = xb[8 * s + j];
          const uint8_t* c = p + 320 + 256 * j;
          int32_t isum = 0;
          for (int v = 0; v < 4; ++v) {
            for (int i = 0; i < 4; ++i) {
              const uint8_t byte = c[64 * v + 4 * lane + i];
              isum += (byte & 15) * b.q[8 * v + i] + (byte >> 4) * b.q[8 * v + 4 + i];
            }
          }
          const int32_t ps = isum * p[64 + 16 * j + lane];
          accs = std::fma(static_cast<float>(ps), b.d, accs);
          const float xs = static_cast<float>(b.sum) * b.d;
          accm = std::fma(static_cast<float>(p[192 + 16 * j + lane]), xs, accm);
        }
        acc = std::fma(HalfBits(p + 2 * lane), accs, acc);
        acc = std::fma(-HalfBits(p + 32 + 2 * lane), accm, acc);
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

void RunScalarQ6K(const MatmulArgs& a, const KqHeader& h, int64_t r0, int64_t r1) {
  const uint8_t* base = a.w + kKqHeaderBytes;
  const int64_t units = a.x_q8->blocks_per_row;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kKqRows, lane = r % kKqRows;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const Q8Block32* xb = a.x_q8->blocks.data() + t * units;
      float acc = 0.0f;
      for (int64_t s = 0; s < h.sblocks; ++s) {
        const uint8_t* p = base + (g * h.sblocks + s) * kKqQ6KRecord;
        float accs = 0.0f;
        for (int j = 0; j < 8 && 8 * s + j < units; ++j) {
          const Q8Block32& b = xb[8 * s + j];
          const uint8_t* c = p + 384 * j;
          int32_t ih[2] = {0, 0};
          for (int k = 0; k < 32; ++k) {
            const int grp = k / 4, i = k % 4;  // code group (4 elements) and byte in the dword
            const uint8_t byte = c[64 * (grp / 2) + 4 * lane + i];
            const int low = grp % 2 == 0 ? byte & 15 : byte >> 4;
            const int high = (c[256 + 64 * (grp / 4) + 4 * lane + i] >> (2 * (grp % 4))) & 3;
            ih[k / 16] += ((low | (high << 4)) - 32) * b.q[k];
          }
          const int32_t ps = static_cast<int8_t>(p[3072 + 16 * (2 * j) + lane]) * ih[0] +
                             static_cast<int8_t>(p[3072 + 16 * (2 * j + 1) + lane]) * ih[1];
          accs = std::fma(static_cast<float>(ps), b.d, accs);
        }
        acc = std::fma(HalfBits(p + 3328 + 2 * lane), accs, acc);
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

}  // namespace

std::optional<KqType> KqTypeOf(const Format& format) {
  if (format.family() != "gguf") return std::nullopt;
  const std::string spec = format.spec();
  if (spec == "gguf:type=q4_k") return KqType::kQ4K;
  if (spec == "gguf:type=q6_k") return KqType::kQ6K;
  return std::nullopt;
}

std::vector<uint8_t> KquantRepack(const Format& format, const uint8_t* packed, int64_t rows,
                                  int64_t cols) {
  const std::optional<KqType> type = KqTypeOf(format);
  LOWBIT_CHECK(type.has_value());
  const bool q4 = *type == KqType::kQ4K;
  const int64_t record = q4 ? kKqQ4KRecord : kKqQ6KRecord;
  const int64_t in_bytes = q4 ? gguf::kQ4KBytes : gguf::kQ6KBytes;
  const int64_t row_bytes = format.RowBytes(cols);
  KqHeader h{
      *type, 0, rows, cols, (rows + kKqRows - 1) / kKqRows, (cols + gguf::kQkK - 1) / gguf::kQkK};
  LOWBIT_CHECK(row_bytes == h.sblocks * in_bytes);
  std::vector<uint8_t> out(static_cast<size_t>(kKqHeaderBytes + h.groups * h.sblocks * record), 0);
  std::memcpy(out.data(), &h, sizeof h);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t g = r / kKqRows, lane = r % kKqRows;
    for (int64_t s = 0; s < h.sblocks; ++s) {
      const uint8_t* blk = packed + r * row_bytes + s * in_bytes;
      uint8_t* p = out.data() + kKqHeaderBytes + (g * h.sblocks + s) * record;
      if (q4) {
        PutQ4K(blk, lane, p);
      } else {
        PutQ6K(blk, lane, p);
      }
    }
  }
  return out;
}

void KquantRunScalar(const MatmulArgs& a, int64_t r0, int64_t r1) {
  KqHeader h;
  std::memcpy(&h, a.w, sizeof h);
  if (h.type == KqType::kQ4K) {
    RunScalarQ4K(a, h, r0, r1);
  } else {
    RunScalarQ6K(a, h, r0, r1);
  }
}

std::optional<KernelEntry> LookupKquantKernel(const Format& format, Isa isa) {
  const std::optional<KqType> type = KqTypeOf(format);
  if (!type) return std::nullopt;
  isa = std::min(isa, MaxSupportedIsa());
  const bool q4 = *type == KqType::kQ4K;
  static const char* const kNames[2][3] = {{"q4_k.scalar.q8", "q4_k.avx2.q8", "q4_k.avx512.q8"},
                                           {"q6_k.scalar.q8", "q6_k.avx2.q8", "q6_k.avx512.q8"}};
  KernelEntry e;
  e.name = kNames[q4 ? 0 : 1][static_cast<int>(isa)];
  e.isa = isa;
  switch (isa) {
    case Isa::kScalar:
      e.run = &KquantRunScalar;
      break;
    case Isa::kAvx2:
      e.run = &KquantRunAvx2;
      break;
    case Isa::kAvx512:
      e.run = &KquantRunAvx512;
      break;
  }
  e.repack = &KquantRepack;
  e.wants_q8 = true;
  e.row_granule = kKqRows;
  e.splits_offset = q4;  // q4_k's d sc c and dmin m terms are rounded apart
  return e;
}

}  // namespace lowbit::kernels
