// AVX-512 + VBMI instantiations of the row-interleaved kernels: the 6-bit element tables (lut6,
// kernels/interleaved.h) look codes up with vpermb, the FP8 magnitude tables (lut8) with
// vpermi2b, and 4-bit table codes (lut) use vpermb, which needs no nibble mask. This file alone is
// compiled with -mavx512vbmi (CMakeLists.txt); LookupInterleavedKernel asks it only when
// CpuHasAvx512Vbmi().
#include "kernels/interleaved_avx512_impl.h"

namespace lowbit::kernels {

RowRangeFn InterleavedVbmiFn(const IlDesc& d) {
  if (d.lut2 != 0) {
    // nf4: two byte tables, the f32 or fp16 absmax of a block of 32, 64 or 128.
    if (d.bits != 4 || d.lut == 0 || d.segs != 1 || d.has_min != 0 || d.lut6 != 0) return nullptr;
    constexpr bool kNo = false;
#define NF4_CASE(UB)                                                           \
  if (d.unit_blocks == UB)                                                     \
    return d.scale == IlScale::kF32 ? &Run<4, 3, 0, 1, IlScale::kF32, kNo, kNo, UB> \
                                    : &Run<4, 3, 0, 1, IlScale::kF16, kNo, kNo, UB>;
    if (d.scale == IlScale::kExp) return nullptr;
    NF4_CASE(1)
    NF4_CASE(2)
    NF4_CASE(4)
#undef NF4_CASE
    return nullptr;
  }
  if (d.unit_blocks != 1) return nullptr;
  if (d.bits == 8 && d.lut8 != 0 && d.scale == IlScale::kExp && d.has_min == 0 && d.zero == 0) {
    const bool sg = d.exp_signed != 0;
#define IL8_CASE(P, S, SG) \
  if (d.lut8 == P && d.segs == S && sg == SG) return &RunLut8<P, S, SG>;
    // mx E4M3 (E8M0 scale per 32) and bm E4M3 (int8 exponent per 16 or 32).
    IL8_CASE(3, 1, false)
    IL8_CASE(3, 2, false)
    IL8_CASE(3, 1, true)
    IL8_CASE(3, 2, true)
    IL8_CASE(2, 1, false)
    IL8_CASE(2, 2, false)
    IL8_CASE(2, 1, true)
    IL8_CASE(2, 2, true)
#undef IL8_CASE
    return nullptr;
  }
  if (d.bits == 4 && d.lut != 0 && d.lut6 == 0 && d.has_min == 0 && d.scale == IlScale::kExp) {
    // 4-bit table codes (mxfp4, FP4 block formats): vpermb instead of mask + vpshufb.
    const bool sg = d.exp_signed != 0;
    if (d.segs == 1)
      return sg ? &Run<4, 2, 0, 1, IlScale::kExp, true, false>
                : &Run<4, 2, 0, 1, IlScale::kExp, false, false>;
    if (d.segs == 2)
      return sg ? &Run<4, 2, 0, 2, IlScale::kExp, true, false>
                : &Run<4, 2, 0, 2, IlScale::kExp, false, false>;
    return nullptr;
  }
  if (d.bits != 6 || d.lut6 == 0 || d.lut != 0 || d.has_min != 0) return nullptr;
  const bool sg = d.exp_signed != 0;
#define IL_CASE(L6, S, K, SG)                                  \
  if (d.lut6 == L6 && d.segs == S && d.scale == K && sg == SG) \
    return &Run<6, false, L6, S, K, SG, false>;
  // mx / bm FP6 (exponent scales, blocks of 32 or 16) and fp6split (the row's fp16 scale).
  IL_CASE(1, 1, IlScale::kExp, false)
  IL_CASE(1, 2, IlScale::kExp, false)
  IL_CASE(1, 1, IlScale::kExp, true)
  IL_CASE(1, 2, IlScale::kExp, true)
  IL_CASE(2, 1, IlScale::kExp, false)
  IL_CASE(2, 2, IlScale::kExp, false)
  IL_CASE(2, 1, IlScale::kExp, true)
  IL_CASE(2, 2, IlScale::kExp, true)
  IL_CASE(1, 1, IlScale::kF16, false)
  IL_CASE(2, 1, IlScale::kF16, false)
#undef IL_CASE
  return nullptr;
}

}  // namespace lowbit::kernels
