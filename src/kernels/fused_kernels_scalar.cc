// The scalar instantiations of the fused loops (kernels/loops_scalar.h) for every kernel id of
// kernels/fused_table.h.
#include "kernels/fused_table_build.h"
#include "kernels/loops_scalar.h"

namespace lowbit::kernels {

LOWBIT_DEFINE_FUSED_TABLE(FusedFnsScalar, scalar)

}  // namespace lowbit::kernels
