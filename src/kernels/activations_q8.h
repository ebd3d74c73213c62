// The per-level implementations behind QuantizeActivationsQ8 (kernels/kernel.h), which picks one
// at run time; every level writes identical blocks.
#pragma once

#include <cstdint>

#include "kernels/kernel.h"

namespace lowbit::kernels {

// blocks: (n_tokens, blocks_per_row) with blocks_per_row = ceil(cols / 32).
void QuantizeActivationsQ8Scalar(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                                 int64_t blocks_per_row);
void QuantizeActivationsQ8Avx2(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                               int64_t blocks_per_row);
void QuantizeActivationsQ8Avx512(const float* x, int64_t n_tokens, int64_t cols, Q8Block32* blocks,
                                 int64_t blocks_per_row);

}  // namespace lowbit::kernels
