// STUB: replaced by the float family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterFloatFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
