// STUB: replaced by the minifloat family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterMinifloatFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
