// The kernel families, one lookup per file group; src/kernels/dispatch.cc asks them in order.
#pragma once

#include "kernels/kernel.h"

namespace lowbit::kernels {

// GGUF block types: q8_0, q4_0, q4_1, q5_0, q4_k, q6_k (kernels/gguf_*).
std::optional<KernelEntry> LookupGgufKernel(const Format& format, Isa isa);
// Group-scaled integers and NF4: int:bits=4|8 with group scales, nf4 (kernels/integer_*).
std::optional<KernelEntry> LookupIntegerKernel(const Format& format, Isa isa);
// Shared-exponent block formats: mx (mxint8, mxfp8/6/4), bfp, bm, bl, fp6split
// (kernels/shared_exponent_*).
std::optional<KernelEntry> LookupSharedExponentKernel(const Format& format, Isa isa);

// Additive codebooks (AQLM): lookup-table matvec (kernels/additive_*).
std::optional<KernelEntry> LookupAdditiveKernel(const Format& format, Isa isa);

}  // namespace lowbit::kernels
