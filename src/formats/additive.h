// Additive codebook quantization (AQLM), family "aqlm" (docs/formats/additive.md, code in
// additive.cc).
//
// Source: Egiazarian, Panferov, Kuznedelev, Frantar, Babenko, Alistarh, "Extreme Compression of
// Large Language Models via Additive Quantization", ICML 2024 (arXiv:2401.06118), section 3; the
// storage fields follow the Hugging Face AQLM layout (transformers' AqlmConfig / the `aqlm` package:
// codes [out, in/g, M], codebooks fp16 [M, 2^B, 1, g], scales fp16 [out, 1, 1, 1]).
//
// Spec:  aqlm:m=M,b=B,g=G     defaults m=2 (1..8), b=8 (1..16), g=8 (1..32)
//
// What: each row (output feature) r of a (rows, cols) matrix is cut into groups of G consecutive
// input weights; group j of row r decodes to
//   w[r, jG .. jG+G-1] = s_r * (C_0[k_{r,j,0}] + C_1[k_{r,j,1}] + ... + C_{M-1}[k_{r,j,M-1}])
// with M codebooks C_m of K = 2^B codewords of G values each (shared by the whole tensor), one
// B-bit code k per (row, group, codebook) and one scale s_r per row. Every value is an IEEE
// binary16; decode sums the M codewords in float32 in codebook order (C_0 first), then multiplies
// by s_r in float32.
//
// Layout of a packed (rows, cols) tensor (n_groups = ceil(cols / G)):
//   header   M * K * G binary16, little-endian: C_m[k][i] at index (m * K + k) * G + i
//   row r    binary16 s_r, then n_groups * M codes of B bits, code (j, m) at stream index
//            j * M + m, as a little-endian bit stream (code i occupies bits i*B .. i*B+B-1, bit 0
//            = least significant bit of byte 0): B = 8 is one byte per code, B = 16 one uint16.
//            The last byte's unused high bits are 0.
//   HeaderBytes = 2 M K G,  RowBytes = 2 + ceil(n_groups * M * B / 8).
// Bits per weight (exact): 8 * (HeaderBytes + rows * RowBytes) / (rows * cols); e.g. 2x8 g8 on a
// 4096 x 4096 tensor: 2 + 16/4096 + 2*256*8*16/4096^2 = 2.0078.
//
// Tail: a row whose length is not a multiple of G is padded with zeros to whole groups (the padding
// is encoded as zero targets and counted in the bits per weight); decode drops it.
// Encoding (Format::Quantize, calibration-free, i.e. the AQLM objective with H = identity):
//   s_r = fp16(sqrt(mean of x^2 over the row's finite elements)), clamped to 65504; the row's
//   normalized values x / s_r (clamped to +-65504; non-finite x and s_r == 0 give 0) are grouped,
//   M codebooks are trained by residual k-means (deterministic init, a few Lloyd steps, on a
//   strided sample when the tensor is large), refined by one pass of block-coordinate descent
//   (codes, then per-codebook means), rounded to fp16, and the codes chosen again against the
//   rounded codebooks. B > 10 with more groups than codewords uses a two-level product init
//   (see additive.cc). H-weighted training (calibration data) lives in src/quant/aqlm.
// Special values: NaN / +-Inf inputs encode as 0 (they carry no usable magnitude); an all-zero
//   (or all-non-finite, or subnormal-below-fp16) row has s_r = 0 and decodes to zeros.
// Decoding never fails: any bytes decode; fp16 NaN/Inf fields follow IEEE arithmetic.
// Error bound: none a priori (the codebooks are learned per tensor), so ErrorBound() is +Inf and the
//   quality of a tensor is measured by its objective instead. Not idempotent: quantizing a decoded
//   tensor trains new codebooks.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/format.h"

namespace lowbit {

struct AqlmParams {
  int m = 2;  // codebooks (1..8)
  int b = 8;  // bits per code (1..16): 2^b codewords per codebook
  int g = 8;  // input weights per group (1..32)

  int64_t codebook_size() const { return int64_t{1} << b; }
  int64_t groups(int64_t cols) const { return (cols + g - 1) / g; }
  bool operator==(const AqlmParams&) const = default;
};

// One tensor unpacked: the fields of the packed layout as floats / integers.
struct AqlmTensor {
  AqlmParams params;
  int64_t rows = 0, cols = 0;
  std::vector<float> codebooks;  // (M, K, G) codeword values
  std::vector<float> scales;     // (rows) s_r
  std::vector<uint32_t> codes;   // (rows, n_groups, M), each < K

  int64_t n_groups() const { return params.groups(cols); }
  uint32_t code(int64_t r, int64_t j, int m) const {
    return codes[static_cast<size_t>((r * n_groups() + j) * params.m + m)];
  }
  const float* codeword(int m, uint32_t k) const {
    return &codebooks[static_cast<size_t>((m * params.codebook_size() + k) * params.g)];
  }
  // Rounds codebooks and scales to binary16 values in place (clamping to +-65504), so the tensor
  // equals its packed form.
  void RoundToHalf();
  // (rows, cols) reconstruction, codeword sums in codebook order, float32, padding dropped.
  void Decode(float* out) const;
};

class AqlmFormat final : public Format {
 public:
  explicit AqlmFormat(AqlmParams params) : p_(params) {}

  const AqlmParams& params() const { return p_; }
  std::string spec() const override;
  std::string_view family() const override { return "aqlm"; }
  int64_t block_size() const override { return -1; }
  int64_t block_bytes() const override { return 0; }
  int64_t HeaderBytes(int64_t rows, int64_t cols) const override;
  int64_t RowBytes(int64_t cols) const override;
  // Bytes of one row's code stream.
  int64_t CodeBytes(int64_t cols) const;

  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override;
  void DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t row_begin,
                      int64_t row_end, float* out) const override;
  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override;
  bool idempotent() const override { return false; }

  // Packs t (whose params must equal params()) into PackedBytes(t.rows, t.cols) bytes; codebooks
  // and scales are rounded to binary16 (clamped to +-65504).
  void Pack(const AqlmTensor& t, uint8_t* out) const;
  AqlmTensor Unpack(const uint8_t* packed, int64_t rows, int64_t cols) const;

 private:
  AqlmParams p_;
};

// Code i of a little-endian bit stream of b-bit codes (layout above).
uint32_t ReadAqlmCode(const uint8_t* stream, int64_t i, int b);
void WriteAqlmCode(uint8_t* stream, int64_t i, int b, uint32_t code);

// Rounds to binary16 and back, clamping finite values to +-65504 first (NaN -> 0).
float RoundToHalfSaturating(float v);

// ---- Calibration-free training pieces, shared with src/quant/aqlm ----

struct KMeansOptions {
  int iterations = 6;
  int64_t max_sample = 0;  // > 0: train on an evenly strided sample of at most this many points
};
// Lloyd's k-means of n points of dimension dim into k centroids (k, dim). Deterministic: the initial
// centroids are k evenly strided points; an empty cluster keeps its centroid. n <= k: the points
// themselves (the other centroids zero).
void KMeans(const float* points, int64_t n, int dim, int64_t k, const KMeansOptions& options,
            float* centroids);
// For each point the index of its nearest centroid (squared L2; lowest index on ties).
void AssignNearest(const float* points, int64_t n, int dim, const float* centroids, int64_t k,
                   uint32_t* out);

// The calibration-free encoder (objective with H = identity) described above; also the AQLM
// initialization for H-weighted training. x: (rows, cols). refine_passes: coordinate passes after
// the residual k-means.
AqlmTensor EncodeAqlmIdentity(const AqlmParams& params, const float* x, int64_t rows, int64_t cols,
                              int refine_passes = 1);

// Builds an AQLM format; InvalidArgument naming the field for out-of-range values.
Result<FormatPtr> MakeAqlmFormat(const AqlmParams& params);

}  // namespace lowbit
