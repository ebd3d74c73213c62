// Memory density and the arithmetic-density cost model, against hand-computed values.
#include <gtest/gtest.h>

#include "format_test_util.h"
#include "lowbit/density.h"

namespace lowbit {
namespace {

TEST(Density, MemoryDensityCountsSharedFields) {
  // The paper's example: BFP6 with blocks of 16 = 6 + 8/16 = 6.5 bits = 32/6.5 = 4.923x.
  EXPECT_DOUBLE_EQ(testing::MustParse("bfp6")->NominalBitsPerWeight(), 6.5);
  EXPECT_NEAR(32.0 / testing::MustParse("bfp6")->NominalBitsPerWeight(), 4.923, 1e-3);
  // MXFP4: 4 + 8/32; q4_0: 4 + 16/32.
  EXPECT_DOUBLE_EQ(testing::MustParse("mxfp4")->NominalBitsPerWeight(), 4.25);
  EXPECT_DOUBLE_EQ(testing::MustParse("q4_0")->NominalBitsPerWeight(), 4.5);
}

TEST(Density, CostModelHandComputed) {
  const MacCostModel m;
  // fp32 x fp32: 24*24 multiplier + 48 accumulate + 16 exponent = 640 cells.
  EXPECT_DOUBLE_EQ(m.Cost(F32Operand(), F32Operand()), 640.0);
  EXPECT_DOUBLE_EQ(ArithmeticDensity(F32Operand(), F32Operand()), 1.0);
  // bfp6 (5 magnitude bits, 8-bit shared exponent per 16) with itself:
  // 5*5 + (5+5) + 0 + (8/16 + 8/16) = 36 -> 640/36.
  const MacOperand bfp6 = testing::MustParse("bfp6")->mac_operand();
  EXPECT_EQ(bfp6.significand_bits, 5);
  EXPECT_DOUBLE_EQ(m.Cost(bfp6, bfp6), 36.0);
  EXPECT_NEAR(ArithmeticDensity(bfp6, bfp6), 640.0 / 36.0, 1e-12);
  // q4_0 weights (3 magnitude bits, fp16 scale per 32: (121 + 5)/32) with f32 activations:
  // 3*24 + 27 + 8 + 126/32.
  const MacOperand q4 = testing::MustParse("q4_0")->mac_operand();
  EXPECT_NEAR(m.Cost(q4, F32Operand()), 72.0 + 27.0 + 8.0 + 126.0 / 32.0, 1e-12);
  // mxfp4: E2M1 (significand 2, exponent 2), E8M0 per 32: 2*2 + 4 + 4 + 2*8/32.
  const MacOperand mx = testing::MustParse("mxfp4")->mac_operand();
  EXPECT_NEAR(m.Cost(mx, mx), 4.0 + 4.0 + 4.0 + 0.5, 1e-12);
  // Block logarithm: no multiplier at all, only exponent adders.
  const MacOperand bl8 = testing::MustParse("bl8")->mac_operand();
  EXPECT_EQ(bl8.significand_bits, 0);
  // A pluggable model: doubling k_mul changes exactly the multiplier term.
  MacCostModel heavy;
  heavy.k_mul = 2.0;
  EXPECT_DOUBLE_EQ(heavy.Cost(bfp6, bfp6), 36.0 + 25.0);
}

TEST(Density, EveryPresetHasASaneMacOperand) {
  for (const std::string& name : testing::AllPresetNames()) {
    const MacOperand op = testing::MustParse(name)->mac_operand();
    EXPECT_GE(op.significand_bits, 0) << name;
    EXPECT_LE(op.significand_bits, 24) << name;
    EXPECT_GE(op.exponent_bits, 0) << name;
    EXPECT_LE(op.exponent_bits, 8) << name;
    EXPECT_GE(op.shared_block, 0) << name;
    const double d = ArithmeticDensity(op, op);
    EXPECT_GE(d, 1.0) << name;  // nothing costs more than fp32 x fp32
  }
}

}  // namespace
}  // namespace lowbit
