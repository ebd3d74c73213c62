// Kernel lookup of the gguf family (formats/gguf_types.cc): which fused kernel (kernels/
// fused_table.h) serves each GGUF type and which activation path is its default.
//
// Default activation path (docs/kernels.md, "Choosing the activation path"): Q8 for every type,
// as llama.cpp's vec_dot does: activations are quantized once per call into blocks of 32 (int8,
// one f32 scale) and every unit is an exact integer dot. That adds the activations' own rounding
// (up to 1/254 of each 32-block's max |x|) and is what makes batch-1 decoding memory-bound.
// ActPath::kF32 (LOWBIT_ACT=f32, or PrepareModelForIsa(model, isa, ActPath::kF32)) keeps the f32
// kernels, whose products equal the reference decoder's weights times x.
#include <string>
#include <string_view>

#include "kernels/fused_table.h"
#include "kernels/kernel_families.h"

namespace lowbit::kernels {
namespace {

struct GgufKernel {
  const char* type;  // value of gguf:type=
  FusedId id;
  bool default_q8;
};

constexpr GgufKernel kGgufKernels[] = {
    {"q8_0", FusedId::kQ8_0, true}, {"q4_0", FusedId::kQ4_0, true},
    {"q4_1", FusedId::kQ4_1, true}, {"q5_0", FusedId::kQ5_0, true},
    {"q5_1", FusedId::kQ5_1, true}, {"q4_k", FusedId::kQ4K, true},
    {"q5_k", FusedId::kQ5K, true},  {"q6_k", FusedId::kQ6K, true},
};

}  // namespace

std::optional<KernelEntry> LookupGgufKernelFor(const Format& format, Isa isa, ActPath path) {
  if (format.family() != "gguf") return std::nullopt;
  const std::string spec = format.spec();  // "gguf:type=<name>"
  const std::string_view type = std::string_view(spec).substr(spec.find('=') + 1);
  for (const GgufKernel& k : kGgufKernels) {
    if (type != k.type) continue;
    const bool q8 = path == ActPath::kQ8 || (path == ActPath::kDefault && k.default_q8);
    // q4_k / q6_k on Q8: the interleaved kernels of kernels/kquant_* (f32 stays fused).
    if (q8) {
      if (std::optional<KernelEntry> e = LookupKquantKernel(format, isa)) return e;
    }
    return MakeFusedEntry(k.id, k.type, isa, q8);
  }
  return std::nullopt;
}

std::optional<KernelEntry> LookupGgufKernel(const Format& format, Isa isa) {
  return LookupGgufKernelFor(format, isa, ActPath::kDefault);
}

}  // namespace lowbit::kernels
