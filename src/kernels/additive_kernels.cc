// Placeholder until the AQLM kernels land: no entry, so the runtime uses the tiled fallback.
#include "kernels/kernel_families.h"

namespace lowbit::kernels {

std::optional<KernelEntry> LookupAdditiveKernel(const Format&, Isa) { return std::nullopt; }

}  // namespace lowbit::kernels
