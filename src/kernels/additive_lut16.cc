// AQLM int16-LUT path (additive_kernels.h): the repack, the LUT quantization shared by every level,
// and the scalar reference.
#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/additive.h"
#include "kernels/additive_kernels.h"

namespace lowbit::kernels {
namespace {

int64_t Align64(int64_t v) { return (v + 63) / 64 * 64; }

}  // namespace

std::vector<uint8_t> RepackAqlmLut16(const Format& format, const uint8_t* packed, int64_t rows,
                                     int64_t cols) {
  // The f32 layout's header, codebook and scales, then the codes slot-major.
  std::vector<uint8_t> f32 = RepackAqlm(format, packed, rows, cols);
  AqlmPacked p = ReadAqlmPacked(f32.data());
  const int64_t rows_pad = (rows + kAqlmLut16Rows - 1) / kAqlmLut16Rows * kAqlmLut16Rows;
  const int64_t old_blocks = p.row_blocks;
  p.row_blocks = rows_pad / kAqlmRowBlock;
  p.scales_offset = Align64(p.codebook_offset + 4 * p.m * p.k() * p.g);
  p.codes_offset = Align64(p.scales_offset + 4 * rows_pad);
  p.total_bytes = Align64(p.codes_offset + p.slots() * rows_pad);
  std::vector<uint8_t> out(static_cast<size_t>(p.total_bytes), 0);
  const AqlmPacked old = ReadAqlmPacked(f32.data());
  std::memcpy(out.data(), &p, sizeof(p));
  std::memcpy(out.data() + p.codebook_offset, f32.data() + old.codebook_offset,
              static_cast<size_t>(4 * p.m * p.k() * p.g));
  std::memcpy(out.data() + p.scales_offset, f32.data() + old.scales_offset,
              static_cast<size_t>(4 * rows));
  uint8_t* codes = out.data() + p.codes_offset;
  for (int64_t rb = 0; rb < old_blocks; ++rb) {
    const uint8_t* src = old.codes(f32.data(), rb);  // (slots, 16)
    for (int64_t s = 0; s < p.slots(); ++s) {
      for (int64_t lane = 0; lane < kAqlmRowBlock; ++lane) {
        const int64_t r = rb * kAqlmRowBlock + lane;
        if (r < rows) codes[s * rows_pad + r] = src[s * kAqlmRowBlock + lane];
      }
    }
  }
  return out;
}

void QuantizeAqlmLut(const float* lut, int64_t n_tokens, int64_t slots, int64_t k, int16_t* q,
                     float* s) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* l = lut + t * slots * k;
    int16_t* qt = q + t * slots * 256;
    float max_abs = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < slots * k; ++i) {
      const float a = std::fabs(l[i]);
      if (!(a <= std::numeric_limits<float>::max())) finite = false;
      max_abs = std::max(max_abs, a);
    }
    std::fill(qt, qt + slots * 256, int16_t{0});
    if (!finite) {
      s[t] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    if (max_abs == 0.0f) {
      s[t] = 0.0f;
      continue;
    }
    s[t] = max_abs / 32767.0f;
    const float inv = 32767.0f / max_abs;
    for (int64_t sl = 0; sl < slots; ++sl) {
      for (int64_t c = 0; c < k; ++c) {
        const float v = std::clamp(std::nearbyint(l[sl * k + c] * inv), -32767.0f, 32767.0f);
        qt[sl * 256 + c] = static_cast<int16_t>(v);
      }
    }
  }
}

void AqlmLut16RowRangeScalar(const MatmulArgs& args, int64_t r0, int64_t r1) {
  const AqlmPacked p = ReadAqlmPacked(args.w);
  const int64_t K = p.k(), slots = p.slots(), rows_pad = p.row_blocks * kAqlmRowBlock;
  const float* scales = p.scales(args.w);
  const uint8_t* codes = args.w + p.codes_offset;
  std::vector<int16_t> q(static_cast<size_t>(kAqlmTokenChunk * slots * 256));
  float s[kAqlmTokenChunk];
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = std::min(kAqlmTokenChunk, args.n_tokens - t0);
    const float* x = args.x + t0 * p.cols;
    // The float LUT of the f32 path (it reads only the header and the codebook, which this layout
    // shares).
    std::vector<float> lut(static_cast<size_t>(nt * slots * K));
    BuildAqlmLutScalar(p, args.w, x, nt, lut.data());
    QuantizeAqlmLut(lut.data(), nt, slots, K, q.data(), s);
    for (int64_t t = 0; t < nt; ++t) {
      for (int64_t r = r0; r < r1; ++r) {
        int32_t acc = 0;
        for (int64_t sl = 0; sl < slots; ++sl) {
          acc += q[static_cast<size_t>((t * slots + sl) * 256 + codes[sl * rows_pad + r])];
        }
        args.y[(t0 + t) * args.ldy + r] = (static_cast<float>(acc) * s[t]) * scales[r];
      }
    }
  }
}

}  // namespace lowbit::kernels
