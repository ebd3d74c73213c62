// Memory and arithmetic density of a weight/activation format pair, relative to fp32.
//
// Memory density = 32 / bits per element, counting every shared field (BFP6 with blocks of 16:
// 6 + 8/16 = 6.5 bits, 4.92x).
//
// Arithmetic density is an ESTIMATE from a pluggable cost model of one multiply-accumulate
// (docs/cost_model.md): cost(fp32 x fp32) / cost(W x A), with
//   cost = k_mul * p_w * p_a                      (array multiplier of the two significands)
//        + k_add * (p_w + p_a)                     (accumulating the p_w + p_a bit product)
//        + k_exp * (e_w + e_a)                     (adding the element exponents)
//        + k_shared * (shared_w / B_w + shared_a / B_a)   (per-block scale logic, amortized)
// where p = significand bits, e = exponent bits (MacOperand), and a shared field costs its width
// (an exponent adder) or, for a real-valued fp16 scale, an 11x11 multiply plus a 5-bit exponent
// add, once per block of B elements. Units are full-adder cells; constants default to 1.
#pragma once

#include "lowbit/format.h"

namespace lowbit {

struct MacCostModel {
  double k_mul = 1.0;
  double k_add = 1.0;
  double k_exp = 1.0;
  double k_shared = 1.0;

  // Cells for one MAC of a weight element w with an activation element a.
  double Cost(const MacOperand& w, const MacOperand& a) const;
};

// The fp32 operand (24-bit significand, 8-bit exponent): the baseline of every density.
MacOperand F32Operand();

// cost(fp32, fp32) / cost(w, a).
double ArithmeticDensity(const MacOperand& w, const MacOperand& a,
                         const MacCostModel& model = MacCostModel{});

}  // namespace lowbit
