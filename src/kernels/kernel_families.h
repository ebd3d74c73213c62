// The kernel families, one lookup per file group; src/kernels/dispatch.cc asks them in order.
#pragma once

#include "kernels/kernel.h"

namespace lowbit::kernels {

// GGUF block types: q8_0, q4_0, q4_1, q5_0, q4_k, q6_k (kernels/gguf_*).
std::optional<KernelEntry> LookupGgufKernel(const Format& format, Isa isa);
// The same with an explicit activation path (FindKernel(format, isa, path)).
std::optional<KernelEntry> LookupGgufKernelFor(const Format& format, Isa isa, ActPath path);
// Group-scaled integers and NF4: int:bits=4|8 with group scales, nf4 (kernels/integer_*).
std::optional<KernelEntry> LookupIntegerKernel(const Format& format, Isa isa);
std::optional<KernelEntry> LookupIntegerKernelFor(const Format& format, Isa isa, ActPath path);
// Shared-exponent block formats: mx (mxint8, mxfp8/6/4), bfp, bm, bl, fp6split
// (kernels/shared_exponent_*).
std::optional<KernelEntry> LookupSharedExponentKernel(const Format& format, Isa isa);

// Row-interleaved Q8 kernels (kernels/interleaved*): GGUF q4_0/q4_1/q5_0/q5_1/q8_0, int 4/8-bit and
// the shared-exponent formats whose elements are small integers (mxfp4, mxint8, bfp, ...).
std::optional<KernelEntry> LookupInterleavedKernel(const Format& format, Isa isa);

// GGUF q4_k / q6_k on Q8 activations with a 16-row interleaved repack (kernels/kquant_*).
std::optional<KernelEntry> LookupKquantKernel(const Format& format, Isa isa);
// nf4 (block a multiple of 32) with a 16-row interleaved repack, f32 activations (kernels/nf4_*).
std::optional<KernelEntry> LookupNf4Kernel(const Format& format, Isa isa);

// Additive codebooks (AQLM): lookup-table matvec (kernels/additive_*), the f32 path.
std::optional<KernelEntry> LookupAdditiveKernel(const Format& format, Isa isa);
// The same with an activation path: kDefault / kQ8 take the int16-LUT kernels where they exist.
std::optional<KernelEntry> LookupAdditiveKernelFor(const Format& format, Isa isa, ActPath path);

}  // namespace lowbit::kernels
