#include <gtest/gtest.h>

#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

TEST(SpecParams, ParsesKeysAndRejectsUnknownOnes) {
  auto params = SpecParams::Parse("fam", "bits=4,mode=asym");
  ASSERT_TRUE(params.ok());
  auto bits = params->GetInt("bits", 8, 2, 8);
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, 4);
  EXPECT_FALSE(params->Finish().ok()) << "mode was never consumed";
  auto mode = params->GetEnum("mode", "sym", {"sym", "asym"});
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(*mode, "asym");
  EXPECT_TRUE(params->Finish().ok());
}

TEST(SpecParams, RejectsMalformedText) {
  EXPECT_FALSE(SpecParams::Parse("fam", "bits").ok());
  EXPECT_FALSE(SpecParams::Parse("fam", "bits=4,").ok());
  EXPECT_FALSE(SpecParams::Parse("fam", "bits=4,bits=5").ok());
  EXPECT_FALSE(SpecParams::Parse("fam", "Bi ts=4").ok());
}

TEST(SpecParams, ReportsOutOfRangeWithKeyName) {
  auto params = SpecParams::Parse("fam", "bits=12");
  ASSERT_TRUE(params.ok());
  auto bits = params->GetInt("bits", 8, 2, 8);
  ASSERT_FALSE(bits.ok());
  EXPECT_NE(bits.status().message().find("bits=12"), std::string::npos);
  auto params2 = SpecParams::Parse("fam", "bits=x4");
  ASSERT_TRUE(params2.ok());
  EXPECT_FALSE(params2->GetInt("bits", 8, 2, 8).ok());
}

TEST(FormatRegistry, UnknownFormatIsAnError) {
  auto f = ParseFormat("no_such_format");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lowbit
