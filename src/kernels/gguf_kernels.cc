// Placeholder until the family's kernels land: no entry, so the runtime uses the tiled fallback.
#include "kernels/kernel_families.h"

namespace lowbit::kernels {

std::optional<KernelEntry> LookupGgufKernel(const Format&, Isa) { return std::nullopt; }

}  // namespace lowbit::kernels
