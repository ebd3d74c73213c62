// STUB: replaced by the block_fp family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterBlockFpFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
