// STUB: replaced by the gguf_types family implementation.
#include "formats/families.h"

namespace lowbit {

void RegisterGgufFamily(FormatRegistry& registry) { (void)registry; }

}  // namespace lowbit
