// The avx512 instantiations of the fused loops (kernels/loops_avx512.h) for every kernel id of
// kernels/fused_table.h.
#include "kernels/fused_table.h"
#include "kernels/loops_avx512.h"

namespace lowbit::kernels {
namespace {

#define LOWBIT_UNPAREN(...) __VA_ARGS__

template <class T, bool kHasQ8>
constexpr FusedFns Fns() {
  FusedFns fns;
  fns.f32 = &avx512::Run<T, false>;
  fns.has_min = T::kHasMin;
  if constexpr (kHasQ8) fns.q8 = &avx512::Run<T, true>;
  return fns;
}

}  // namespace

FusedFns FusedFnsAvx512(FusedId id) {
  static constexpr FusedFns kTable[] = {
#define LOWBIT_ENTRY(id, traits, q8) Fns<LOWBIT_UNPAREN traits, q8>(),
      LOWBIT_FUSED_KERNELS(LOWBIT_ENTRY)
#undef LOWBIT_ENTRY
  };
  return kTable[static_cast<int>(id)];
}

}  // namespace lowbit::kernels
