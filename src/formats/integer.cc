// STUB: replaced by the integer family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterIntegerFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
