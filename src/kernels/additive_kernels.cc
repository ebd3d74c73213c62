// AQLM kernels: the lookup, the repack and the scalar reference (accumulation order in
// additive_kernels.h).
#include "kernels/additive_kernels.h"

#include <algorithm>

#include "formats/additive.h"
#include "kernels/kernel_families.h"

namespace lowbit::kernels {
namespace {

int64_t Align64(int64_t v) { return (v + 63) / 64 * 64; }

}  // namespace

void BuildAqlmLutScalar(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
                    float* lut) {
  const int64_t K = p.k(), slots = p.slots();
  const float* ct = p.codebook(base);  // (M, g, K)
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < p.groups; ++j) {
      const int64_t n_j = std::min<int64_t>(p.g, p.cols - j * p.g);
      const float* xg = x + t * p.cols + j * p.g;
      for (int m = 0; m < p.m; ++m) {
        float* out = lut + (t * slots + j * p.m + m) * K;
        for (int64_t k = 0; k < K; ++k) {
          float acc = 0.0f;
          for (int64_t i = 0; i < n_j; ++i) acc += xg[i] * ct[(m * p.g + i) * K + k];
          out[k] = acc;
        }
      }
    }
  }
}

namespace {

// Per-thread LUT cache (see AqlmLuts).
struct LutCache {
  std::vector<float> codebook;
  std::vector<float> x;
  int64_t cols = -1;
  std::vector<float> lut;
};

}  // namespace

const float* AqlmLuts(const AqlmPacked& p, const uint8_t* base, const float* x, int64_t n_tokens,
                      AqlmLutBuildFn build) {
  thread_local LutCache cache;
  const float* cb = p.codebook(base);
  const size_t cb_n = static_cast<size_t>(p.m * p.g * p.k());
  const size_t x_n = static_cast<size_t>(n_tokens * p.cols);
  const bool hit = cache.cols == p.cols && cache.codebook.size() == cb_n && cache.x.size() == x_n &&
                   std::memcmp(cache.codebook.data(), cb, cb_n * sizeof(float)) == 0 &&
                   std::memcmp(cache.x.data(), x, x_n * sizeof(float)) == 0;
  if (!hit) {
    cache.codebook.assign(cb, cb + cb_n);
    cache.x.assign(x, x + x_n);
    cache.cols = p.cols;
    cache.lut.resize(static_cast<size_t>(n_tokens * p.slots() * p.k()));
    build(p, base, x, n_tokens, cache.lut.data());
  }
  return cache.lut.data();
}

std::vector<uint8_t> RepackAqlm(const Format& format, const uint8_t* packed, int64_t rows,
                                int64_t cols) {
  const auto& f = dynamic_cast<const AqlmFormat&>(format);
  const AqlmTensor t = f.Unpack(packed, rows, cols);
  AqlmPacked p{};
  p.m = f.params().m;
  p.b = f.params().b;
  p.g = f.params().g;
  p.rows = rows;
  p.cols = cols;
  p.groups = f.params().groups(cols);
  p.row_blocks = (rows + kAqlmRowBlock - 1) / kAqlmRowBlock;
  const int64_t K = p.k();
  p.codebook_offset = Align64(sizeof(AqlmPacked));
  p.scales_offset = Align64(p.codebook_offset + 4 * p.m * K * p.g);
  p.codes_offset = Align64(p.scales_offset + 4 * p.row_blocks * kAqlmRowBlock);
  p.total_bytes = Align64(p.codes_offset + p.row_blocks * p.slots() * kAqlmRowBlock * p.code_bytes());
  std::vector<uint8_t> out(static_cast<size_t>(p.total_bytes), 0);
  std::memcpy(out.data(), &p, sizeof(p));
  float* cb = reinterpret_cast<float*>(out.data() + p.codebook_offset);
  for (int m = 0; m < p.m; ++m) {
    for (int64_t k = 0; k < K; ++k) {
      const float* c = t.codeword(m, static_cast<uint32_t>(k));
      for (int i = 0; i < p.g; ++i) {
        if (p.b <= 8) {
          cb[(m * p.g + i) * K + k] = c[i];
        } else {
          cb[(m * K + k) * p.g + i] = c[i];
        }
      }
    }
  }
  float* scales = reinterpret_cast<float*>(out.data() + p.scales_offset);
  for (int64_t r = 0; r < rows; ++r) scales[r] = t.scales[static_cast<size_t>(r)];
  for (int64_t rb = 0; rb < p.row_blocks; ++rb) {
    uint8_t* codes = out.data() + p.codes_offset + rb * p.slots() * kAqlmRowBlock * p.code_bytes();
    for (int64_t lane = 0; lane < kAqlmRowBlock; ++lane) {
      const int64_t r = rb * kAqlmRowBlock + lane;
      if (r >= rows) break;
      for (int64_t j = 0; j < p.groups; ++j) {
        for (int m = 0; m < p.m; ++m) {
          const int64_t at = (j * p.m + m) * kAqlmRowBlock + lane;
          const uint32_t code = t.code(r, j, m);
          if (p.code_bytes() == 1) {
            codes[at] = static_cast<uint8_t>(code);
          } else {
            codes[2 * at] = static_cast<uint8_t>(code);
            codes[2 * at + 1] = static_cast<uint8_t>(code >> 8);
          }
        }
      }
    }
  }
  return out;
}

void AqlmRowRangeScalar(const MatmulArgs& args, int64_t r0, int64_t r1) {
  const AqlmPacked p = ReadAqlmPacked(args.w);
  const int64_t K = p.k(), slots = p.slots();
  const float* scales = p.scales(args.w);
  const float* cb = p.codebook(args.w);
  for (int64_t t0 = 0; t0 < args.n_tokens; t0 += kAqlmTokenChunk) {
    const int64_t nt = std::min(kAqlmTokenChunk, args.n_tokens - t0);
    const float* x = args.x + t0 * p.cols;
    const float* lut = p.b <= 8 ? AqlmLuts(p, args.w, x, nt, &BuildAqlmLutScalar) : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t rb = r / kAqlmRowBlock, lane = r % kAqlmRowBlock;
      const uint8_t* codes = p.codes(args.w, rb);
      for (int64_t t = 0; t < nt; ++t) {
        float acc = 0.0f;
        for (int64_t s = 0; s < slots; ++s) {
          const int64_t at = s * kAqlmRowBlock + lane;
          if (p.b <= 8) {
            acc += lut[(t * slots + s) * K + codes[at]];
          } else {
            const uint32_t code = codes[2 * at] | (codes[2 * at + 1] << 8);
            const int64_t j = s / p.m, m = s % p.m;
            const int64_t n_j = std::min<int64_t>(p.g, p.cols - j * p.g);
            const float* c = cb + (m * K + code) * p.g;
            const float* xg = x + t * p.cols + j * p.g;
            float term = 0.0f;
            for (int64_t i = 0; i < n_j; ++i) term += xg[i] * c[i];
            acc += term;
          }
        }
        args.y[(t0 + t) * args.ldy + r] = acc * scales[r];
      }
    }
  }
}

std::optional<KernelEntry> LookupAdditiveKernel(const Format& format, Isa isa) {
  if (format.family() != "aqlm") return std::nullopt;
  if (isa > MaxSupportedIsa()) isa = MaxSupportedIsa();
  KernelEntry entry;
  entry.repack = &RepackAqlm;
  entry.row_granule = kAqlmRowBlock;
  entry.max_tokens = kAqlmTokenChunk;  // small batches (n <= 16); prompts dequantize tiles instead
  entry.tasks_per_thread = 1;          // each task reads the whole LUT once: few, large tasks
  if (isa >= Isa::kAvx512) {
    entry.name = "aqlm.avx512";
    entry.isa = Isa::kAvx512;
    entry.run = &AqlmRowRangeAvx512;
  } else if (isa >= Isa::kAvx2) {
    entry.name = "aqlm.avx2";
    entry.isa = Isa::kAvx2;
    entry.run = &AqlmRowRangeAvx2;
  } else {
    entry.name = "aqlm.scalar";
    entry.isa = Isa::kScalar;
    entry.run = &AqlmRowRangeScalar;
  }
  return entry;
}

std::optional<KernelEntry> LookupAdditiveKernelFor(const Format& format, Isa isa, ActPath path) {
  if (format.family() != "aqlm" || path == ActPath::kF32) return LookupAdditiveKernel(format, isa);
  const auto& f = dynamic_cast<const AqlmFormat&>(format);
  if (f.params().b > 8) return LookupAdditiveKernel(format, isa);  // no 2^16-entry int16 tables
  if (isa > MaxSupportedIsa()) isa = MaxSupportedIsa();
  KernelEntry entry;
  entry.repack = &RepackAqlmLut16;
  entry.row_granule = kAqlmLut16Rows;
  entry.max_tokens = kAqlmTokenChunk;
  entry.tasks_per_thread = 1;
  if (isa >= Isa::kAvx512) {
    entry.name = "aqlm.lut16.avx512";
    entry.isa = Isa::kAvx512;
    entry.run = &AqlmLut16RowRangeAvx512;
  } else if (path == ActPath::kQ8) {
    // Asked for explicitly (LOWBIT_ACT=q8) below AVX-512: the reference, slow but the same bits.
    entry.name = "aqlm.lut16.scalar";
    entry.isa = Isa::kScalar;
    entry.run = &AqlmLut16RowRangeScalar;
  } else {
    return LookupAdditiveKernel(format, isa);  // without vpermi2w the f32 gathers are faster
  }
  return entry;
}

}  // namespace lowbit::kernels
