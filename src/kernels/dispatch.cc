// CPU feature probe, the LOWBIT_ISA / LOWBIT_ACT overrides, Q8 activation quantization and the
// kernel table. (Owner: kern-core helper.)
#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/activations_q8.h"
#include "kernels/kernel_families.h"

namespace lowbit::kernels {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

std::optional<Isa> ParseIsa(const char* name) {
  if (name == nullptr) return std::nullopt;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(name, IsaName(isa)) == 0) return isa;
  }
  return std::nullopt;
}

Isa ResolveIsa(Isa max_supported, const char* env) {
  const std::optional<Isa> want = ParseIsa(env);
  return want && *want < max_supported ? *want : max_supported;
}

Isa MaxSupportedIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    // F16C by CPUID leaf 1, ECX bit 29: clang's __builtin_cpu_supports has no "f16c" name.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni")) {
      return Isa::kAvx512;
    }
    return avx2 ? Isa::kAvx2 : Isa::kScalar;
  }();
  return isa;
}

bool CpuHasAvx512Vbmi() {
  static const bool has = [] {
    __builtin_cpu_init();
    return MaxSupportedIsa() == Isa::kAvx512 && __builtin_cpu_supports("avx512vbmi");
  }();
  return has;
}

Isa ActiveIsa() {
  static const Isa isa = ResolveIsa(MaxSupportedIsa(), std::getenv("LOWBIT_ISA"));
  return isa;
}

ActPath ActivePath() {
  static const ActPath path = [] {
    const char* env = std::getenv("LOWBIT_ACT");
    if (env != nullptr && std::strcmp(env, "f32") == 0) return ActPath::kF32;
    if (env != nullptr && std::strcmp(env, "q8") == 0) return ActPath::kQ8;
    return ActPath::kDefault;
  }();
  return path;
}

namespace {

// round(v) with ties away from zero, for |v| <= 127 (std::lround's result without the libm call):
// t = trunc(v) is exact, v - t is exact, and |v - t| >= 0.5 moves t one step away from zero.
inline int RoundHalfAway(float v) {
  const int t = static_cast<int>(v);
  const float frac = v - static_cast<float>(t);
  return t + (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
}

}  // namespace

void QuantizeActivationsQ8Scalar(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                                 int64_t per_row) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < per_row; ++b) {
      Q8Block32& blk = blocks[t * per_row + b];
      const float* v = x + t * cols + b * 32;
      const int n = static_cast<int>(std::min<int64_t>(32, cols - b * 32));
      float amax = 0.0f;
      for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
      blk.d = amax / 127.0f;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int i = 0; i < 32; ++i) {
        // |v * inv| <= 127 (1 + 2^-23)^2 for finite blocks, which rounds to 127; an Inf in the
        // block gives inv = 0 and Inf * 0 = NaN, which (like a NaN input) becomes q = 0. A block
        // whose max is below 127 / FLT_MAX (~4e-37) makes inv = +Inf, so scaled is clamped to
        // +-127 BEFORE the float -> int conversion (converting Inf is undefined; found by
        // fuzz_gguf). For every other block the clamp changes nothing.
        const float scaled = i < n ? v[i] * inv : 0.0f;
        const int q = scaled == scaled ? RoundHalfAway(std::clamp(scaled, -127.0f, 127.0f)) : 0;
        blk.q[i] = static_cast<int8_t>(q);
        sum += q;
      }
      blk.sum = sum;
    }
  }
}

void QuantizeActivationsQ8(const float* x, int64_t n_tokens, int64_t cols, ActivationsQ8* out) {
  QuantizeActivationsQ8At(ActiveIsa(), x, n_tokens, cols, out);
}

void QuantizeActivationsQ8At(Isa isa, const float* x, int64_t n_tokens, int64_t cols,
                             ActivationsQ8* out) {
  const int64_t per_row = (cols + 31) / 32;
  out->blocks_per_row = per_row;
  out->blocks.resize(static_cast<size_t>(n_tokens * per_row));
  const Isa level = std::min(isa, MaxSupportedIsa());
  if (level == Isa::kAvx512) {
    QuantizeActivationsQ8Avx512(x, n_tokens, cols, out->blocks.data(), per_row);
  } else if (level == Isa::kAvx2) {
    QuantizeActivationsQ8Avx2(x, n_tokens, cols, out->blocks.data(), per_row);
  } else {
    QuantizeActivationsQ8Scalar(x, n_tokens, cols, out->blocks.data(), per_row);
  }
}

std::optional<KernelEntry> FindKernel(const Format& format, Isa isa, ActPath path) {
  // Q8 activations are the default wherever a format has an integer-dot kernel (docs/kernels.md,
  // "Choosing the activation path"); the row-interleaved kernels are the fastest of those.
  if (path != ActPath::kF32) {
    if (std::optional<KernelEntry> e = LookupInterleavedKernel(format, isa)) return e;
  }
  if (std::optional<KernelEntry> e = LookupGgufKernelFor(format, isa, path)) return e;
  if (std::optional<KernelEntry> e = LookupIntegerKernelFor(format, isa, path)) return e;
  if (std::optional<KernelEntry> e = LookupSharedExponentKernel(format, isa)) return e;
  return LookupAdditiveKernelFor(format, isa, path);
}

std::optional<KernelEntry> FindKernel(const Format& format, Isa isa) {
  return FindKernel(format, isa, ActivePath());
}

}  // namespace lowbit::kernels
