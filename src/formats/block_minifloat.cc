// STUB: replaced by the block_minifloat family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterBlockMinifloatFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
