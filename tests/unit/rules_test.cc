// Quantization rules: glob matching, rule-file parsing and the first-match-wins order.
#include <gtest/gtest.h>

#include "lowbit/format_registry.h"
#include "lowbit/rules.h"

namespace lowbit {
namespace {

// A '*' in the pattern stays a wildcard where the name has a literal '*' (fuzz_rules found
// "*a" vs "*ba" answered false: the star was consumed as a literal with no backtrack point left).
TEST(GlobMatch, StarIsAWildcardEvenOverALiteralStar) {
  EXPECT_TRUE(GlobMatch("*a", "*ba"));
  EXPECT_TRUE(GlobMatch("*a*b*", "*a*b*"));
  EXPECT_TRUE(GlobMatch("x*y", "x*zy"));
  EXPECT_FALSE(GlobMatch("*a", "*b"));
}

TEST(GlobMatch, StarQuestionAndLiterals) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*", "token_embd.weight"));
  EXPECT_TRUE(GlobMatch("blk.*.ffn_down.weight", "blk.12.ffn_down.weight"));
  EXPECT_FALSE(GlobMatch("blk.*.ffn_down.weight", "blk.12.ffn_up.weight"));
  EXPECT_TRUE(GlobMatch("blk.?.attn_*", "blk.3.attn_q.weight"));
  EXPECT_FALSE(GlobMatch("blk.?.attn_*", "blk.13.attn_q.weight"));  // '?' is one character
  EXPECT_TRUE(GlobMatch("*.weight", "output.weight"));
  EXPECT_FALSE(GlobMatch("output.weight", "output.weight2"));        // anchored at both ends
  EXPECT_FALSE(GlobMatch("token_embd", "token_embd.weight"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  // A pathological pattern stays fast (no exponential backtracking).
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(Rules, ParseFileWithCommentsKeepAndSpecsContainingEquals) {
  const std::string text =
      "# keep the embedding at 8 bits\n"
      "token_embd.weight = q8_0\n"
      "\n"
      "blk.*.ffn_down.weight=bfp:w=6,block=16,exp=ceil   # trailing comment\n"
      "blk.0.* = keep\n";
  Result<std::vector<QuantRule>> rules = ParseRules(text, "r.txt");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ASSERT_EQ(rules->size(), 3u);
  EXPECT_EQ((*rules)[0].pattern, "token_embd.weight");
  EXPECT_EQ((*rules)[0].format->spec(), "gguf:type=q8_0");
  EXPECT_EQ((*rules)[0].origin, "r.txt:2");
  EXPECT_EQ((*rules)[1].format->spec(), "bfp:w=6,block=16,exp=ceil");
  EXPECT_EQ((*rules)[1].origin, "r.txt:4");
  EXPECT_EQ((*rules)[2].format, nullptr);  // keep

  QuantRules q;
  q.rules = *rules;
  q.default_format = *ParseFormat("q4_0");
  EXPECT_EQ(q.FormatFor("token_embd.weight")->spec(), "gguf:type=q8_0");
  EXPECT_EQ(q.FormatFor("blk.3.ffn_down.weight")->spec(), "bfp:w=6,block=16,exp=ceil");
  // First match wins: blk.0.ffn_down matches rule 2 before the keep rule.
  EXPECT_EQ(q.FormatFor("blk.0.ffn_down.weight")->spec(), "bfp:w=6,block=16,exp=ceil");
  EXPECT_EQ(q.FormatFor("blk.0.attn_q.weight"), nullptr);
  EXPECT_EQ(q.FormatFor("blk.1.attn_q.weight")->spec(), "gguf:type=q4_0");
  EXPECT_EQ(q.Match("blk.1.attn_q.weight"), nullptr);
}

TEST(Rules, ErrorsNameTheLineAndReason) {
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {"token_embd.weight q8_0\n", "r.txt:1: expected 'PATTERN = FORMAT'"},
      {"# c\n = q8_0\n", "r.txt:2: empty tensor pattern"},
      {"a = \n", "r.txt:1: no format after '='"},
      {"\n\nblk.* = q9_9\n", "r.txt:3: format for 'blk.*'"},
      {"blk.* = bfp:w=99\n", "r.txt:1: format for 'blk.*'"},
  };
  for (const Case& c : cases) {
    Result<std::vector<QuantRule>> r = ParseRules(c.text, "r.txt");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message() << " should contain " << c.expect;
  }
  EXPECT_FALSE(ParseRule("=", "--rule").ok());
  EXPECT_TRUE(ParseRules("", "empty").ok());
}

}  // namespace
}  // namespace lowbit
