// STUB: replaced by the fp6_split family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterFp6SplitFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
