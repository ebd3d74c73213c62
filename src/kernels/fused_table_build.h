// Builds one ISA's table of fused kernels (kernels/fused_table.h): included by the per-ISA files
// after their loops header, so the table is written once and instantiated per instruction set.
//   LOWBIT_DEFINE_FUSED_TABLE(FusedFnsAvx2, avx2)  defines  FusedFns FusedFnsAvx2(FusedId)
// from the namespace's Run<Traits, kQ8> loops.
#pragma once

#include "kernels/fused_table.h"

#define LOWBIT_UNPAREN(...) __VA_ARGS__

#define LOWBIT_DEFINE_FUSED_TABLE(function_name, isa_namespace)                       \
  namespace {                                                                         \
  template <class T, bool kHasQ8>                                                     \
  constexpr FusedFns Fns() {                                                          \
    FusedFns fns;                                                                     \
    fns.f32 = &isa_namespace::Run<T, false>;                                          \
    fns.has_min = T::kHasMin;                                                         \
    if constexpr (kHasQ8) fns.q8 = &isa_namespace::Run<T, true>;                      \
    return fns;                                                                       \
  }                                                                                   \
  }                                                                                   \
  FusedFns function_name(FusedId id) {                                                \
    static constexpr FusedFns kTable[] = {                                            \
        LOWBIT_FUSED_KERNELS(LOWBIT_FUSED_TABLE_ENTRY)};                              \
    return kTable[static_cast<int>(id)];                                              \
  }

#define LOWBIT_FUSED_TABLE_ENTRY(id, traits, q8) Fns<LOWBIT_UNPAREN traits, q8>(),
