// Limits on untrusted JSON (safetensors headers, config.json, tokenizer.json, tokenizer_config.json).
//
// nlohmann::json parses iteratively, but dump() and some accessors recurse once per nesting level,
// so a few megabytes of "[[[[..." would overflow the stack when an error message prints the value.
// Real files nest at most ~6 levels; the readers refuse anything deeper than a small limit before
// parsing.
#pragma once

#include <algorithm>
#include <string_view>

namespace lowbit::io {

// Deepest bracket nesting of a JSON text (strings, with their escapes, skipped); stops counting
// once the depth exceeds `limit` and returns that depth.
inline int JsonNestingDepth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// Nesting limit for config.json and tokenizer.json (real files: at most ~6).
constexpr int kMaxJsonNesting = 64;

}  // namespace lowbit::io
