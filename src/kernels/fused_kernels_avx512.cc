// The avx512 instantiations of the fused loops (kernels/loops_avx512.h) for every kernel id of
// kernels/fused_table.h.
#include "kernels/fused_table_build.h"
#include "kernels/loops_avx512.h"

namespace lowbit::kernels {

LOWBIT_DEFINE_FUSED_TABLE(FusedFnsAvx512, avx512)

}  // namespace lowbit::kernels
