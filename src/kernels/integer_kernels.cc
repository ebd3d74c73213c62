// Kernel lookup of the int family (formats/integer.h) and of nf4 (formats/nf4.h): which fused
// kernel (kernels/fused_table.h) serves a format and which activation path is its default.
//
// Covered: int with bits = 4 (sym, asym) or 8 (sym, asym) and group = a multiple of 32, row or
// tensor; nf4 with a block that is a multiple of 32 (either scale width). Other int / nf4 specs
// (2, 3, 5..7 bits, odd groups) have no entry and use the runtime's tiled fallback.
// Q8 variants: int4 sym/asym and int8 sym (int8 asym's 0..255 codes do not fit AVX2's pmaddubsw
// without saturation, so it stays f32-only); nf4's codebook is not an integer grid: its f32
// kernels are here, and its Q8 kernel (the table rounded to 2^-14, AVX-512 VBMI) is the
// interleaved one that FindKernel asks first (kernels/interleaved.h, lut2).
// Default activation path: Q8 where a variant exists (see gguf_kernels.cc and docs/kernels.md).
#include <string>

#include "kernels/fused_table.h"
#include "kernels/kernel_families.h"

namespace lowbit::kernels {
namespace {

bool Has(const std::string& spec, const char* part) { return spec.find(part) != std::string::npos; }

}  // namespace

std::optional<KernelEntry> LookupIntegerKernelFor(const Format& format, Isa isa, ActPath path) {
  const bool q8 = path != ActPath::kF32;  // Q8 by default where a variant exists
  if (format.family() == "nf4") {
    if (format.block_size() % kUnit != 0) return std::nullopt;
    if (std::optional<KernelEntry> e = LookupNf4Kernel(format, isa)) return e;  // kernels/nf4_*
    return MakeFusedEntry(FusedId::kNf4, "nf4", isa, false);
  }
  if (format.family() != "int") return std::nullopt;
  const std::string spec = format.spec();  // int:bits=B,mode=sym|asym,group=...
  const int64_t group = format.block_size();
  if (group > 0 && group % kUnit != 0) return std::nullopt;
  const bool asym = Has(spec, "mode=asym");
  if (Has(spec, "bits=4,")) {
    return MakeFusedEntry(asym ? FusedId::kInt4Asym : FusedId::kInt4Sym,
                          asym ? "int4_asym" : "int4_sym", isa, q8);
  }
  if (Has(spec, "bits=8,")) {
    return MakeFusedEntry(asym ? FusedId::kInt8Asym : FusedId::kInt8Sym,
                          asym ? "int8_asym" : "int8_sym", isa, q8);
  }
  return std::nullopt;
}

std::optional<KernelEntry> LookupIntegerKernel(const Format& format, Isa isa) {
  return LookupIntegerKernelFor(format, isa, ActPath::kDefault);
}

}  // namespace lowbit::kernels
