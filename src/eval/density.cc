// The MAC cost model behind the arithmetic-density estimate (include/lowbit/density.h).
#include "lowbit/density.h"

namespace lowbit {
namespace {

// Per-element share of a block's scale logic.
double SharedCells(const MacOperand& op) {
  if (op.shared_block <= 0) return 0.0;
  // An fp16 scale: 11x11 significand multiply + 5-bit exponent add; a power of two: an adder.
  const double cells = op.shared_multiply ? 11.0 * 11.0 + 5.0 : static_cast<double>(op.shared_bits);
  return cells / static_cast<double>(op.shared_block);
}

}  // namespace

double MacCostModel::Cost(const MacOperand& w, const MacOperand& a) const {
  return k_mul * w.significand_bits * a.significand_bits +
         k_add * (w.significand_bits + a.significand_bits) +
         k_exp * (w.exponent_bits + a.exponent_bits) + k_shared * (SharedCells(w) + SharedCells(a));
}

MacOperand F32Operand() { return {.significand_bits = 24, .exponent_bits = 8}; }

double ArithmeticDensity(const MacOperand& w, const MacOperand& a, const MacCostModel& model) {
  return model.Cost(F32Operand(), F32Operand()) / model.Cost(w, a);
}

}  // namespace lowbit
