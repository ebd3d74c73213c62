// MakeFusedEntry: the KernelEntry of one fused kernel id at one level (kernels/fused_table.h).
#include <array>
#include <mutex>
#include <string>

#include "kernels/fused_table.h"

namespace lowbit::kernels {

KernelEntry MakeFusedEntry(FusedId id, const char* format_name, Isa isa, bool q8) {
  FusedFns fns;
  switch (isa) {
    case Isa::kScalar: fns = FusedFnsScalar(id); break;
    case Isa::kAvx2: fns = FusedFnsAvx2(id); break;
    case Isa::kAvx512: fns = FusedFnsAvx512(id); break;
  }
  const bool use_q8 = q8 && fns.q8 != nullptr;
  // Names live as long as the process: one string per (id, isa, path), built on first use.
  static std::array<std::array<std::array<std::string, 2>, 3>, static_cast<int>(FusedId::kCount)>
      names;
  static std::mutex mutex;
  std::string& name = names[static_cast<int>(id)][static_cast<int>(isa)][use_q8];
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (name.empty()) name = std::string(format_name) + "." + IsaName(isa) + (use_q8 ? ".q8" : ".f32");
  }
  KernelEntry entry;
  entry.name = name.c_str();
  entry.isa = isa;
  entry.run = use_q8 ? fns.q8 : fns.f32;
  entry.wants_q8 = use_q8;
  entry.row_granule = 1;
  entry.splits_offset = use_q8 && fns.has_min;
  return entry;
}

}  // namespace lowbit::kernels
