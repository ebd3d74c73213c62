// STUB: replaced by the block_log family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterBlockLogFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
