// The avx2 instantiations of the fused loops (kernels/loops_avx2.h) for every kernel id of
// kernels/fused_table.h.
#include "kernels/fused_table_build.h"
#include "kernels/loops_avx2.h"

namespace lowbit::kernels {

LOWBIT_DEFINE_FUSED_TABLE(FusedFnsAvx2, avx2)

}  // namespace lowbit::kernels
