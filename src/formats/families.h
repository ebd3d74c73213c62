// Registration entry points, one per format family file. Called once, in order, by
// FormatRegistry::Get(); each adds its family and its presets.
#pragma once

#include "lowbit/format_registry.h"

namespace lowbit {

void RegisterFloatFamily(FormatRegistry& registry);          // float.cc (f32, f16, bf16)
void RegisterIntegerFamily(FormatRegistry& registry);        // integer.cc
void RegisterMinifloatFamily(FormatRegistry& registry);      // minifloat.cc
void RegisterBlockFpFamily(FormatRegistry& registry);        // block_fp.cc
void RegisterBlockMinifloatFamily(FormatRegistry& registry); // block_minifloat.cc
void RegisterBlockLogFamily(FormatRegistry& registry);       // block_log.cc
void RegisterMxFamily(FormatRegistry& registry);             // mx.cc
void RegisterFp6SplitFamily(FormatRegistry& registry);       // fp6_split.cc
void RegisterGgufFamily(FormatRegistry& registry);           // gguf_types.cc
void RegisterNf4Family(FormatRegistry& registry);            // nf4.cc
void RegisterAdditiveFamily(FormatRegistry& registry);       // additive.cc (AQLM)

}  // namespace lowbit
