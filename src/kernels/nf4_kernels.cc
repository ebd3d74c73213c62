// The nf4 interleaved kernels (kernels/nf4_kernels.h): the load-time repack, the scalar reference
// level and the kernel lookup. Portable code, no ISA flags.
#include "kernels/nf4_kernels.h"

#include <cmath>

#include "formats/minifloat_codec.h"
#include "formats/nf4.h"
#include "kernels/kernel_families.h"
#include "lowbit/status.h"

namespace lowbit::kernels {
namespace {

float LoadScale(const uint8_t* p, int64_t scale_bytes) {
  if (scale_bytes == 2) return HalfToFloat(static_cast<uint16_t>(p[0] | (p[1] << 8)));
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Code of element k (0 .. N - 1) of a block's record for lane r.
int CodeAt(const uint8_t* codes, int64_t lane, int64_t k) {
  const int64_t u = k / 32, v = (k % 32) / 8, i = k % 8;
  return (codes[256 * u + 64 * v + 4 * lane + i / 2] >> (4 * (i % 2))) & 15;
}

}  // namespace

std::vector<uint8_t> Nf4Repack(const Format& format, const uint8_t* packed, int64_t rows,
                               int64_t cols) {
  Nf4Header h;
  h.rows = rows;
  h.cols = cols;
  h.groups = (rows + kNf4Rows - 1) / kNf4Rows;
  h.block = format.block_size();
  LOWBIT_CHECK(h.block > 0 && h.block % 32 == 0);
  h.scale_bytes = Nf4ScaleBytes(format);
  LOWBIT_CHECK(h.scale_bytes == 2 || h.scale_bytes == 4);
  h.blocks = (cols + h.block - 1) / h.block;
  h.record_bytes = 16 * h.scale_bytes + 8 * h.block;
  const int64_t row_bytes = format.RowBytes(cols);
  LOWBIT_CHECK(row_bytes == h.blocks * format.block_bytes());
  std::vector<uint8_t> out(
      static_cast<size_t>(kNf4HeaderBytes + h.groups * h.blocks * h.record_bytes), 0);
  std::memcpy(out.data(), &h, sizeof h);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t g = r / kNf4Rows, lane = r % kNf4Rows;
    for (int64_t b = 0; b < h.blocks; ++b) {
      const uint8_t* blk = packed + r * row_bytes + b * format.block_bytes();
      uint8_t* p = out.data() + kNf4HeaderBytes + (g * h.blocks + b) * h.record_bytes;
      std::memcpy(p + h.scale_bytes * lane, blk, static_cast<size_t>(h.scale_bytes));
      uint8_t* codes = p + 16 * h.scale_bytes;
      for (int64_t k = 0; k < h.block; ++k) {
        // Past cols: code 7 (0.0).
        const int c = b * h.block + k >= cols ? 7 : Nf4CodeAt(blk + h.scale_bytes, k);
        const int64_t u = k / 32, v = (k % 32) / 8, i = k % 8;
        codes[256 * u + 64 * v + 4 * lane + i / 2] |= static_cast<uint8_t>(c << (4 * (i % 2)));
      }
    }
  }
  return out;
}

void Nf4RunScalar(const MatmulArgs& a, int64_t r0, int64_t r1) {
  Nf4Header h;
  std::memcpy(&h, a.w, sizeof h);
  thread_local std::vector<float> buf;
  int64_t stride = 0;
  const float* x = Nf4Activations(a, h, &buf, &stride);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kNf4Rows, lane = r % kNf4Rows;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const float* xt = x + t * stride;
      float acc = 0.0f;
      for (int64_t b = 0; b < h.blocks; ++b) {
        const uint8_t* p = a.w + kNf4HeaderBytes + (g * h.blocks + b) * h.record_bytes;
        const uint8_t* codes = p + 16 * h.scale_bytes;
        float am[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t k = 0; k < h.block; ++k) {
          am[k % 4] = std::fma(kNf4Values[CodeAt(codes, lane, k)], xt[b * h.block + k], am[k % 4]);
        }
        const float s = (am[0] + am[1]) + (am[2] + am[3]);
        acc = std::fma(s, LoadScale(p + h.scale_bytes * lane, h.scale_bytes), acc);
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

std::optional<KernelEntry> LookupNf4Kernel(const Format& format, Isa isa) {
  if (format.family() != "nf4" || format.block_size() % 32 != 0) return std::nullopt;
  isa = std::min(isa, MaxSupportedIsa());
  static const char* const kNames[3] = {"nf4.scalar.f32", "nf4.avx2.f32", "nf4.avx512.f32"};
  KernelEntry e;
  e.name = kNames[static_cast<int>(isa)];
  e.isa = isa;
  switch (isa) {
    case Isa::kScalar:
      e.run = &Nf4RunScalar;
      break;
    case Isa::kAvx2:
      e.run = &Nf4RunAvx2;
      break;
    case Isa::kAvx512:
      e.run = &Nf4RunAvx512;
      break;
  }
  e.repack = &Nf4Repack;
  e.wants_q8 = false;
  e.row_granule = kNf4Rows;
  return e;
}

}  // namespace lowbit::kernels
