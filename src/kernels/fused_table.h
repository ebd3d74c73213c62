// The fused kernels of kernels/gguf_* and kernels/integer_*: which Traits class (block_traits.h)
// each kernel id uses, and the per-ISA tables of their row-range functions. The lists below are
// the only place a kernel id meets its Traits; the ISA files instantiate the loops from them.
#pragma once

#include "kernels/block_traits.h"
#include "kernels/kernel.h"

namespace lowbit::kernels {

// X(id, Traits, has_q8): has_q8 = whether an integer-dot (Q8 activation) variant exists.
#define LOWBIT_FUSED_KERNELS(X)             \
  X(kQ8_0, (Q8_0Traits), true)                \
  X(kQ4_0, (Q4_0Traits), true)                \
  X(kQ4_1, (Q4_1Traits), true)                \
  X(kQ5_0, (Q5_0Traits), true)                \
  X(kQ5_1, (Q5_1Traits), true)                \
  X(kQ4K, (QkKTraits<false>), true)           \
  X(kQ5K, (QkKTraits<true>), true)            \
  X(kQ6K, (Q6KTraits), true)                  \
  X(kInt4Sym, (IntTraits<4, false>), true)  \
  X(kInt4Asym, (IntTraits<4, true>), true)  \
  X(kInt8Sym, (IntTraits<8, false>), true)  \
  X(kInt8Asym, (IntTraits<8, true>), false) \
  X(kNf4, (Nf4Traits), false)

enum class FusedId : int {
#define LOWBIT_ID(id, traits, q8) id,
  LOWBIT_FUSED_KERNELS(LOWBIT_ID)
#undef LOWBIT_ID
      kCount
};

struct FusedFns {
  RowRangeFn f32 = nullptr;
  RowRangeFn q8 = nullptr;  // null where the format has no integer-dot variant
  bool has_min = false;     // Traits::kHasMin: the Q8 variant splits the offset term
};

// One per ISA file (fused_kernels_{scalar,avx2,avx512}.cc).
FusedFns FusedFnsScalar(FusedId id);
FusedFns FusedFnsAvx2(FusedId id);
FusedFns FusedFnsAvx512(FusedId id);

// The entry for `id` at the highest level <= isa, with the Q8 variant when q8 is set and exists.
KernelEntry MakeFusedEntry(FusedId id, const char* format_name, Isa isa, bool q8);

}  // namespace lowbit::kernels
