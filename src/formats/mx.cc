// STUB: replaced by the mx family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterMxFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
