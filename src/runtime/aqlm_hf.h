// The Hugging Face AQLM layout of one linear layer (transformers' AqlmConfig / the `aqlm` package,
// also read by vLLM's AQLMLinearMethod) and its exact correspondence with lowbit's packed "aqlm"
// format (src/formats/additive.h). Used by the exporter (src/quant/aqlm/export_hf.cc) and the HF
// folder loader (load_hf.cc). docs/aqlm_hf.md has the whole folder layout.
//
// Per linear `<prefix>` (e.g. model.layers.0.self_attn.q_proj), W of shape (out, in), M codebooks of
// K = 2^B codewords, in_group_size g, out_group_size 1 (the only value lowbit reads or writes):
//   <prefix>.codes      int8 if B <= 8, else int16   [out, in / g, M]   codes[r][j][m] = k(r, j, m)
//   <prefix>.codebooks  float16                      [M, K, 1, g]       codebooks[m][k][0][i] = C_m[k][i]
//   <prefix>.scales     float16                      [out, 1, 1, 1]     scales[r] = s_r
// Decode (aqlm package: dequantize by summing the M codewords of each group, times the row scale):
//   W[r, j g + i] = s_r * sum_m C_m[code(r, j, m)][i],  code = stored value mod 2^B.
// Codes are stored as the two's-complement bit pattern of the code in the dtype's width (the
// `aqlm` package reads them back modulo 2^B): a 16-bit code k >= 32768 is stored as k - 65536, an
// 8-bit code k >= 128 as k - 256.
//
// Mapping to lowbit's packed bytes (additive.h): the packed header is the M*K*g binary16 codewords in
// (m, k, i) order, which is the row-major order of `codebooks`; row r is binary16 s_r followed by the
// codes in stream order j*M + m, which is the row-major order of codes[r]. For B = 8 and B = 16 the
// bytes are identical (a code byte / little-endian uint16 is the int8 / int16 bit pattern); other B
// are re-packed code by code. HF requires in % g == 0 (lowbit pads a row tail instead).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/additive.h"
#include "lowbit/safetensors.h"
#include "lowbit/status.h"

namespace lowbit {

// One linear layer in the HF layout: raw little-endian tensor bytes plus their shapes.
struct HfAqlmLinear {
  SafetensorsDtype codes_dtype = SafetensorsDtype::kI8;
  std::vector<int64_t> codes_shape;      // [rows, cols / g, M]
  std::vector<int64_t> codebooks_shape;  // [M, 2^B, 1, g]
  std::vector<int64_t> scales_shape;     // [rows, 1, 1, 1]
  std::vector<uint8_t> codes;            // rows * (cols / g) * M * (1 or 2) bytes
  std::vector<uint8_t> codebooks;        // M * 2^B * g * 2 bytes (binary16)
  std::vector<uint8_t> scales;           // rows * 2 bytes (binary16)
};

// The safetensors dtype of the codes for B bits per code: I8 for B <= 8, I16 for 9..16.
SafetensorsDtype HfAqlmCodesDtype(int bits_per_code);

// lowbit packed (rows, cols) AQLM tensor -> HF layout. row_order (empty: identity) lists, for each
// output row of the HF tensor, the packed row it comes from (a permutation of 0..rows-1; the
// codebooks are shared by all rows, so permuting rows only moves each row's scale and codes).
// InvalidArgument when cols is not a multiple of g (HF has no row tail).
Result<HfAqlmLinear> PackedAqlmToHf(const AqlmParams& params, const uint8_t* packed, int64_t rows,
                                    int64_t cols, std::span<const int64_t> row_order = {});

// The three HF tensors of one linear, as found in a file (data pointers into the mapped file).
struct HfAqlmTensorRefs {
  std::string prefix;  // "<prefix>" for messages
  SafetensorsDtype codes_dtype, codebooks_dtype, scales_dtype;
  std::vector<int64_t> codes_shape, codebooks_shape, scales_shape;
  const uint8_t* codes = nullptr;
  const uint8_t* codebooks = nullptr;
  const uint8_t* scales = nullptr;
};

// HF layout -> lowbit packed bytes (AqlmFormat(params).PackedBytes(rows, cols)), after checking
// every dtype and shape against params and (rows, cols), every code against 2^B, and every codeword
// and scale for NaN/Inf. Errors are kDataLoss naming `where` (the folder), the tensor and the
// expected value.
Result<std::vector<uint8_t>> HfAqlmToPacked(const AqlmParams& params, int64_t rows, int64_t cols,
                                            const HfAqlmTensorRefs& t, const std::string& where);

}  // namespace lowbit
