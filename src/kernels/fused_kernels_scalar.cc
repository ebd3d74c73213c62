// The scalar instantiations of the fused loops (kernels/loops_scalar.h) for every kernel id of
// kernels/fused_table.h.
#include "kernels/fused_table.h"
#include "kernels/loops_scalar.h"

namespace lowbit::kernels {
namespace {

#define LOWBIT_UNPAREN(...) __VA_ARGS__

template <class T, bool kHasQ8>
constexpr FusedFns Fns() {
  FusedFns fns;
  fns.f32 = &scalar::Run<T, false>;
  fns.has_min = T::kHasMin;
  if constexpr (kHasQ8) fns.q8 = &scalar::Run<T, true>;
  return fns;
}

}  // namespace

FusedFns FusedFnsScalar(FusedId id) {
  static constexpr FusedFns kTable[] = {
#define LOWBIT_ENTRY(id, traits, q8) Fns<LOWBIT_UNPAREN traits, q8>(),
      LOWBIT_FUSED_KERNELS(LOWBIT_ENTRY)
#undef LOWBIT_ENTRY
  };
  return kTable[static_cast<int>(id)];
}

}  // namespace lowbit::kernels
