// CPU feature probe, LOWBIT_ISA override and the kernel table. (Owner: kern-core helper.)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/kernel_families.h"

namespace lowbit::kernels {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Isa MaxSupportedIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return Isa::kAvx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return isa;
}

Isa ActiveIsa() {
  static const Isa isa = [] {
    Isa level = MaxSupportedIsa();
    if (const char* env = std::getenv("LOWBIT_ISA")) {
      const std::string v(env);
      Isa want = level;
      if (v == "scalar") want = Isa::kScalar;
      if (v == "avx2") want = Isa::kAvx2;
      if (v == "avx512") want = Isa::kAvx512;
      if (want < level) level = want;
    }
    return level;
  }();
  return isa;
}

void QuantizeActivationsQ8(const float* x, int64_t n_tokens, int64_t cols, ActivationsQ8* out) {
  const int64_t per_row = (cols + 31) / 32;
  out->blocks_per_row = per_row;
  out->blocks.resize(static_cast<size_t>(n_tokens * per_row));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < per_row; ++b) {
      Q8Block32& blk = out->blocks[static_cast<size_t>(t * per_row + b)];
      const float* v = x + t * cols + b * 32;
      const int64_t n = std::min<int64_t>(32, cols - b * 32);
      float amax = 0.0f;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
      blk.d = amax / 127.0f;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      blk.sum = 0;
      for (int64_t i = 0; i < 32; ++i) {
        const int q = i < n ? static_cast<int>(std::lround(v[i] * inv)) : 0;
        blk.q[i] = static_cast<int8_t>(q);
        blk.sum += q;
      }
    }
  }
}

std::optional<KernelEntry> FindKernel(const Format& format, Isa isa) {
  for (KernelLookupFn lookup :
       {&LookupGgufKernel, &LookupIntegerKernel, &LookupSharedExponentKernel,
        &LookupAdditiveKernel}) {
    if (std::optional<KernelEntry> entry = lookup(format, isa)) return entry;
  }
  return std::nullopt;
}

}  // namespace lowbit::kernels
