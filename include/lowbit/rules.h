// Quantization rules: which storage format each tensor of a model gets.
//
// A rule maps a tensor-name glob to a format spec (or "keep": leave the tensor as stored in the
// source file). Tensor names are the GGUF names (token_embd.weight, blk.<l>.attn_q.weight,
// blk.<l>.ffn_down.weight, output.weight, ...) whatever file the model came from. The first rule
// whose pattern matches wins; a tensor no rule matches takes the default format. The file syntax is
// documented in docs/rules.md:
//
//   # keep the embedding table and the classifier at 8 bits
//   token_embd.weight = q8_0
//   output.weight     = q8_0
//   blk.*.ffn_down.weight = bfp:bits=6,block=16,exp=ceil
//   blk.0.* = keep
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

struct QuantRule {
  std::string pattern;  // glob: '*' any run of characters (dots included), '?' one character
  FormatPtr format;     // null: keep the tensor as stored
  std::string origin;   // "rules.txt:3" or "--rule", for messages
};

struct QuantRules {
  std::vector<QuantRule> rules;  // in priority order
  FormatPtr default_format;      // tensors no rule matches; null: keep

  // The rule that decides `tensor_name`, or nullptr when the default applies.
  const QuantRule* Match(std::string_view tensor_name) const;
  // The format for `tensor_name` (null: keep as stored).
  FormatPtr FormatFor(std::string_view tensor_name) const;
};

// True when `name` matches the glob `pattern` ('*' and '?'; everything else literal).
bool GlobMatch(std::string_view pattern, std::string_view name);

// Parses one "PATTERN = SPEC" rule (a --rule argument, or a line of a rule file). `origin` names
// where it came from in error messages.
Result<QuantRule> ParseRule(std::string_view text, std::string_view origin);

// Parses a rule file's text: one rule per line, '#' starts a comment, blank lines ignored.
// Errors name origin:line and the reason (missing '=', empty pattern, bad format spec).
Result<std::vector<QuantRule>> ParseRules(std::string_view text, std::string_view origin);

}  // namespace lowbit
