// HF AQLM layout <-> lowbit packed "aqlm" bytes; the correspondence is documented in aqlm_hf.h.
#include "runtime/aqlm_hf.h"

#include <cmath>
#include <cstring>


namespace lowbit {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool FiniteHalf(const uint8_t* p) {
  const uint16_t h = static_cast<uint16_t>(p[0] | (p[1] << 8));
  return (h & 0x7c00u) != 0x7c00u;  // exponent all ones: Inf or NaN
}

}  // namespace

SafetensorsDtype HfAqlmCodesDtype(int bits_per_code) {
  return bits_per_code <= 8 ? SafetensorsDtype::kI8 : SafetensorsDtype::kI16;
}

Result<HfAqlmLinear> PackedAqlmToHf(const AqlmParams& p, const uint8_t* packed, int64_t rows,
                                    int64_t cols, std::span<const int64_t> row_order) {
  if (cols % p.g != 0) {
    return InvalidArgument("aqlm: " + std::to_string(cols) + " columns are not a multiple of g = " +
                           std::to_string(p.g) + " (the HF layout has no row tail)");
  }
  LOWBIT_CHECK(row_order.empty() || static_cast<int64_t>(row_order.size()) == rows);
  const AqlmFormat format(p);
  const int64_t k = p.codebook_size(), groups = cols / p.g;
  const int64_t header = format.HeaderBytes(rows, cols), row_bytes = format.RowBytes(cols);
  const int64_t per_row = groups * p.m;
  const int code_size = p.b <= 8 ? 1 : 2;

  HfAqlmLinear out;
  out.codes_dtype = HfAqlmCodesDtype(p.b);
  out.codes_shape = {rows, groups, p.m};
  out.codebooks_shape = {p.m, k, 1, p.g};
  out.scales_shape = {rows, 1, 1, 1};
  out.codebooks.assign(packed, packed + header);  // (m, k, i) binary16, same order
  out.scales.resize(static_cast<size_t>(2 * rows));
  out.codes.resize(static_cast<size_t>(rows * per_row * code_size));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t src = row_order.empty() ? r : row_order[static_cast<size_t>(r)];
    LOWBIT_CHECK(src >= 0 && src < rows);
    const uint8_t* row = packed + header + src * row_bytes;
    std::memcpy(&out.scales[static_cast<size_t>(2 * r)], row, 2);
    uint8_t* dst = &out.codes[static_cast<size_t>(r * per_row * code_size)];
    if (p.b == 8 || p.b == 16) {
      // One byte / one little-endian uint16 per code: the int8 / int16 two's-complement pattern.
      std::memcpy(dst, row + 2, static_cast<size_t>(per_row * code_size));
      continue;
    }
    for (int64_t i = 0; i < per_row; ++i) {
      const uint32_t code = ReadAqlmCode(row + 2, i, p.b);  // < 2^b <= 2^15: non-negative
      dst[i * code_size] = static_cast<uint8_t>(code);
      if (code_size == 2) dst[i * code_size + 1] = static_cast<uint8_t>(code >> 8);
    }
  }
  return out;
}

Result<std::vector<uint8_t>> HfAqlmToPacked(const AqlmParams& p, int64_t rows, int64_t cols,
                                            const HfAqlmTensorRefs& t, const std::string& where) {
  const auto fail = [&](const std::string& tensor, const std::string& why) {
    return DataLoss(where + ": tensor '" + t.prefix + "." + tensor + "' " + why);
  };
  const int64_t k = p.codebook_size();
  if (cols % p.g != 0) {
    return DataLoss(where + ": linear '" + t.prefix + "' has " + std::to_string(cols) +
                    " input features, not a multiple of in_group_size " + std::to_string(p.g));
  }
  const int64_t groups = cols / p.g;
  const SafetensorsDtype want_codes = HfAqlmCodesDtype(p.b);
  if (t.codes_dtype != want_codes) {
    return fail("codes", "has dtype " + std::string(SafetensorsDtypeName(t.codes_dtype)) +
                             ", expected " + std::string(SafetensorsDtypeName(want_codes)) +
                             " for nbits_per_codebook " + std::to_string(p.b));
  }
  const std::vector<int64_t> codes_shape = {rows, groups, p.m};
  if (t.codes_shape != codes_shape) {
    return fail("codes", "has shape " + ShapeText(t.codes_shape) + ", expected " +
                             ShapeText(codes_shape) + " [out, in / in_group_size, num_codebooks]");
  }
  if (t.codebooks_dtype != SafetensorsDtype::kF16) {
    return fail("codebooks", "has dtype " + std::string(SafetensorsDtypeName(t.codebooks_dtype)) +
                                 ", expected F16");
  }
  const std::vector<int64_t> codebooks_shape = {p.m, k, 1, p.g};
  if (t.codebooks_shape != codebooks_shape) {
    return fail("codebooks", "has shape " + ShapeText(t.codebooks_shape) + ", expected " +
                                 ShapeText(codebooks_shape) +
                                 " [num_codebooks, 2^nbits, out_group_size, in_group_size]");
  }
  if (t.scales_dtype != SafetensorsDtype::kF16) {
    return fail("scales", "has dtype " + std::string(SafetensorsDtypeName(t.scales_dtype)) +
                              ", expected F16");
  }
  const std::vector<int64_t> scales_shape = {rows, 1, 1, 1};
  if (t.scales_shape != scales_shape) {
    return fail("scales", "has shape " + ShapeText(t.scales_shape) + ", expected " +
                              ShapeText(scales_shape));
  }

  const AqlmFormat format(p);
  const int64_t header = format.HeaderBytes(rows, cols), row_bytes = format.RowBytes(cols);
  const int64_t per_row = groups * p.m;
  const int code_size = p.b <= 8 ? 1 : 2;
  for (int64_t i = 0; i < header; i += 2) {
    if (!FiniteHalf(t.codebooks + i)) {
      return fail("codebooks", "element " + std::to_string(i / 2) + " is NaN or infinite");
    }
  }
  std::vector<uint8_t> packed(static_cast<size_t>(format.PackedBytes(rows, cols)), 0);
  std::memcpy(packed.data(), t.codebooks, static_cast<size_t>(header));
  for (int64_t r = 0; r < rows; ++r) {
    if (!FiniteHalf(t.scales + 2 * r)) {
      return fail("scales", "element " + std::to_string(r) + " is NaN or infinite");
    }
    uint8_t* row = packed.data() + header + r * row_bytes;
    std::memcpy(row, t.scales + 2 * r, 2);
    const uint8_t* src = t.codes + r * per_row * code_size;
    for (int64_t i = 0; i < per_row; ++i) {
      // The stored two's-complement pattern read as unsigned is the code (mod 2^8 / 2^16).
      const uint32_t code = code_size == 1 ? src[i]
                                           : static_cast<uint32_t>(src[2 * i] | (src[2 * i + 1] << 8));
      if (code >= static_cast<uint32_t>(k)) {
        return fail("codes", "element " + std::to_string(r * per_row + i) + " is code " +
                                 std::to_string(code) + ", outside [0, " + std::to_string(k) +
                                 ") for nbits_per_codebook " + std::to_string(p.b));
      }
      WriteAqlmCode(row + 2, i, p.b, code);
    }
  }
  return packed;
}

}  // namespace lowbit
