// Kernel table of the shared-exponent block formats: mx (mxfp8 e4m3/e5m2, mxfp6 e3m2/e2m3,
// mxfp4, mxint8; blocks 16 and 32), bfp (w = 3..8, blocks 16 and 32), bm (elements of 3..6 bits
// and E4M3), bl (k = 2..5 and 7) and fp6split. A format is matched by family() and its spec's
// parameters (BuildSharedExponentTables), never by a preset name; anything else gets no entry
// and runs on the tiled fallback.
#include <string>
#include <vector>

#include "kernels/kernel_families.h"
#include "kernels/shared_exponent_kernels.h"

namespace lowbit::kernels {
namespace {

// "<kind>.<isa>" for every kind and level, built once (KernelEntry::name must outlive it).
const char* EntryName(int index, Isa isa) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (int i = 0; i < kNumSeKinds; ++i) {
      for (Isa level : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        out.push_back(std::string(kSeKinds[i].name) + "." + IsaName(level));
      }
    }
    return out;
  }();
  return names[static_cast<size_t>(index * 3 + static_cast<int>(isa))].c_str();
}

RowRangeFn FnAt(int index, Isa isa) {
  switch (isa) {
    case Isa::kScalar: return SharedExponentScalarFn(index);
    case Isa::kAvx2: return SharedExponentAvx2Fn(index);
    case Isa::kAvx512: return SharedExponentAvx512Fn(index);
  }
  return nullptr;
}

}  // namespace

std::optional<KernelEntry> LookupSharedExponentKernel(const Format& format, Isa isa) {
  const std::optional<SeTables> tables = BuildSharedExponentTables(format);
  if (!tables) return std::nullopt;
  const int index = SeKindIndex(tables->kind);
  if (index < 0) return std::nullopt;
  // Never hand out a level this CPU cannot run, whatever the caller asks for.
  if (isa > MaxSupportedIsa()) isa = MaxSupportedIsa();
  for (int level = static_cast<int>(isa); level >= 0; --level) {
    const Isa at = static_cast<Isa>(level);
    if (RowRangeFn fn = FnAt(index, at)) {
      KernelEntry entry;
      entry.name = EntryName(index, at);
      entry.isa = at;
      entry.run = fn;
      return entry;
    }
  }
  return std::nullopt;
}

}  // namespace lowbit::kernels
