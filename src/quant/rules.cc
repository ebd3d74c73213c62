// Rule files and --rule arguments: tensor-name globs -> storage formats (include/lowbit/rules.h).
#include "lowbit/rules.h"

#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

std::string_view Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view name) {
  // Iterative matcher with one backtrack point (the last '*'): linear in practice, never
  // exponential on hostile patterns such as "*a*a*a*b".
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    // '*' first: it is a wildcard even where the name holds a literal '*' (found by fuzz_rules:
    // taking it as a literal there left no backtrack point, so "*a" failed to match "*ba").
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

const QuantRule* QuantRules::Match(std::string_view tensor_name) const {
  for (const QuantRule& rule : rules) {
    if (GlobMatch(rule.pattern, tensor_name)) return &rule;
  }
  return nullptr;
}

FormatPtr QuantRules::FormatFor(std::string_view tensor_name) const {
  const QuantRule* rule = Match(tensor_name);
  return rule != nullptr ? rule->format : default_format;
}

Result<QuantRule> ParseRule(std::string_view text, std::string_view origin) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return InvalidArgument(std::string(origin) + ": expected 'PATTERN = FORMAT', got '" +
                           std::string(Trim(text)) + "'");
  }
  const std::string_view pattern = Trim(text.substr(0, eq));
  const std::string_view spec = Trim(text.substr(eq + 1));
  if (pattern.empty()) return InvalidArgument(std::string(origin) + ": empty tensor pattern");
  if (spec.empty()) {
    return InvalidArgument(std::string(origin) + ": no format after '=' for pattern '" +
                           std::string(pattern) + "'");
  }
  QuantRule rule;
  rule.pattern = std::string(pattern);
  rule.origin = std::string(origin);
  if (spec != "keep") {
    Result<FormatPtr> format = ParseFormat(spec);
    if (!format.ok()) {
      return InvalidArgument(std::string(origin) + ": format for '" + rule.pattern +
                             "': " + format.status().message());
    }
    rule.format = *format;
  }
  return rule;
}

Result<std::vector<QuantRule>> ParseRules(std::string_view text, std::string_view origin) {
  std::vector<QuantRule> rules;
  int64_t line_number = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_number;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    if (Trim(line).empty()) continue;
    Result<QuantRule> rule =
        ParseRule(line, std::string(origin) + ":" + std::to_string(line_number));
    if (!rule.ok()) return rule.status();
    rules.push_back(std::move(rule).value());
  }
  return rules;
}

}  // namespace lowbit
