// STUB: replaced by the nf4 family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterNf4Family(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
