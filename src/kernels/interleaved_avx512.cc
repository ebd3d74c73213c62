// AVX-512 (+VNNI) instantiations of the row-interleaved kernels (interleaved_avx512_impl.h).
#include "kernels/interleaved_avx512_impl.h"

namespace lowbit::kernels {

RowRangeFn InterleavedAvx512Fn(const IlDesc& d) {
  // The two-table (nf4) layout needs vpermb: interleaved_vbmi.cc.
  if (d.lut2 != 0 || d.scale == IlScale::kF32) return nullptr;
  const bool f16 = d.scale == IlScale::kF16;
  const bool sg = d.exp_signed != 0;
  const bool mn = d.has_min != 0;
  if (d.unit_blocks == 4) {  // int groups of >= 128: fp16 fields once per 4 blocks
    if (d.scale != IlScale::kF16 || d.segs != 1 || d.lut != 0 || d.lut6 != 0) return nullptr;
    if (d.bits == 4)
      return d.has_min ? &Run<4, false, 0, 1, IlScale::kF16, false, true, 4>
                       : &Run<4, false, 0, 1, IlScale::kF16, false, false, 4>;
    if (d.bits == 8)
      return d.has_min ? &Run<8, false, 0, 1, IlScale::kF16, false, true, 4>
                       : &Run<8, false, 0, 1, IlScale::kF16, false, false, 4>;
    return nullptr;
  }
  if (d.lut6 != 0 || d.lut8 != 0) return nullptr;  // interleaved_vbmi.cc
#define IL_CASE(B, L, S, K, SG, M)                                                            \
  if (d.bits == B && (d.lut != 0) == L && d.segs == S && d.scale == K && sg == SG && mn == M) \
    return &Run<B, L, 0, S, K, SG, M>;
  // fp16 scale per unit (GGUF, int): sign flag unused.
  if (f16) {
    IL_CASE(4, false, 1, IlScale::kF16, false, false)
    IL_CASE(4, false, 1, IlScale::kF16, false, true)
    IL_CASE(6, false, 1, IlScale::kF16, false, false)
    IL_CASE(5, false, 1, IlScale::kF16, false, false)
    IL_CASE(6, false, 1, IlScale::kF16, false, true)
    IL_CASE(5, false, 1, IlScale::kF16, false, true)
    IL_CASE(8, false, 1, IlScale::kF16, false, false)
    IL_CASE(8, false, 1, IlScale::kF16, false, true)
    return nullptr;
  }
  IL_CASE(4, true, 1, IlScale::kExp, false, false)
  IL_CASE(4, true, 2, IlScale::kExp, false, false)
  IL_CASE(4, false, 1, IlScale::kExp, false, false)
  IL_CASE(4, false, 2, IlScale::kExp, false, false)
  IL_CASE(4, true, 1, IlScale::kExp, true, false)
  IL_CASE(4, true, 2, IlScale::kExp, true, false)
  IL_CASE(4, false, 1, IlScale::kExp, true, false)
  IL_CASE(4, false, 2, IlScale::kExp, true, false)
  IL_CASE(6, false, 1, IlScale::kExp, true, false)
  IL_CASE(5, false, 1, IlScale::kExp, true, false)
  IL_CASE(6, false, 2, IlScale::kExp, true, false)
  IL_CASE(5, false, 2, IlScale::kExp, true, false)
  IL_CASE(6, false, 1, IlScale::kExp, false, false)
  IL_CASE(5, false, 1, IlScale::kExp, false, false)
  IL_CASE(6, false, 2, IlScale::kExp, false, false)
  IL_CASE(5, false, 2, IlScale::kExp, false, false)
  IL_CASE(8, false, 1, IlScale::kExp, true, false)
  IL_CASE(8, false, 2, IlScale::kExp, true, false)
  IL_CASE(8, false, 1, IlScale::kExp, false, false)
  IL_CASE(8, false, 2, IlScale::kExp, false, false)
#undef IL_CASE
  return nullptr;
}

}  // namespace lowbit::kernels
