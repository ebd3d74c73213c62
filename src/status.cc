#include "lowbit/status.h"

namespace lowbit {

std::string Status::ToString() const {
  if (ok()) return "ok";
  return message_;
}

void CheckFailed(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "lowbit: internal check failed at %s:%d: %s\n", file, line, expr);
  std::abort();
}

}  // namespace lowbit
