// libFuzzer target: quantization rule files (ParseRules, include/lowbit/rules.h). Rules that parse
// are matched against typical tensor names, and GlobMatch is checked against a plain dynamic-
// programming glob (quadratic, obviously correct) on the rule's pattern.
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "lowbit/rules.h"

namespace {

// Reference glob: '*' any run (possibly empty), '?' one character, everything else literal.
bool ReferenceGlob(std::string_view pattern, std::string_view name) {
  std::vector<char> row(name.size() + 1, 0), next(name.size() + 1, 0);
  row[0] = 1;  // empty pattern matches the empty prefix
  for (char pc : pattern) {
    std::fill(next.begin(), next.end(), 0);
    for (size_t j = 0; j <= name.size(); ++j) {
      if (pc == '*') {
        next[j] = row[j] || (j > 0 && next[j - 1]);
      } else if (j > 0 && row[j - 1] && (pc == '?' || pc == name[j - 1])) {
        next[j] = 1;
      }
    }
    row.swap(next);
  }
  return row[name.size()] != 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<std::vector<QuantRule>> rules = ParseRules(text, "rules.txt");
  if (!rules.ok()) {
    fuzz::CheckError(rules.status());
    FUZZ_CHECK(rules.status().message().find("rules.txt:") != std::string::npos);
    return 0;
  }
  const std::string_view names[] = {"token_embd.weight", "blk.0.attn_q.weight",
                                    "blk.12.ffn_down.weight", "output.weight", "", "*",
                                    "blk.?.x"};
  QuantRules set;
  set.rules = *rules;
  for (const QuantRule& rule : *rules) {
    FUZZ_CHECK(!rule.pattern.empty());
    FUZZ_CHECK(rule.origin.rfind("rules.txt:", 0) == 0);
    if (rule.format != nullptr) (void)rule.format->spec();
    if (rule.pattern.size() > 512) continue;
    for (std::string_view name : names) {
      FUZZ_CHECK(GlobMatch(rule.pattern, name) == ReferenceGlob(rule.pattern, name));
    }
    // The pattern against itself and against the text that follows it in the file.
    FUZZ_CHECK(GlobMatch(rule.pattern, rule.pattern) == ReferenceGlob(rule.pattern, rule.pattern));
  }
  for (std::string_view name : names) (void)set.FormatFor(name);
  return 0;
}
