// Additive codebook quantization (AQLM): layout, decode and the calibration-free encoder. The
// format's definition is in additive.h and docs/formats/additive.md.
#include "formats/additive.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "formats/families.h"
#include "formats/minifloat_codec.h"

namespace lowbit {
namespace {

constexpr float kHalfMax = 65504.0f;

// Exact binary16 -> float32 by bit manipulation (the codec's Decode is exact but slow, and decode
// runs once per code per tile).
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // Inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else {
    // Zero or subnormal: man * 2^-24, exact in float.
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

inline uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline void StoreU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

inline uint16_t HalfBitsSaturating(float v) {
  if (std::isnan(v)) return 0;
  return FloatToHalf(std::clamp(v, -kHalfMax, kHalfMax));
}

}  // namespace

float RoundToHalfSaturating(float v) { return HalfBitsToFloat(HalfBitsSaturating(v)); }

uint32_t ReadAqlmCode(const uint8_t* stream, int64_t i, int b) {
  if (b == 8) return stream[i];
  if (b == 16) return LoadU16(stream + 2 * i);
  const int64_t bit = i * b;
  // Up to 16 bits starting anywhere in a byte span at most 3 bytes.
  const uint8_t* p = stream + bit / 8;
  const int shift = static_cast<int>(bit % 8);
  const int n_bytes = (shift + b + 7) / 8;
  uint32_t v = 0;
  for (int k = 0; k < n_bytes; ++k) v |= static_cast<uint32_t>(p[k]) << (8 * k);
  return (v >> shift) & ((1u << b) - 1u);
}

void WriteAqlmCode(uint8_t* stream, int64_t i, int b, uint32_t code) {
  if (b == 8) {
    stream[i] = static_cast<uint8_t>(code);
    return;
  }
  if (b == 16) {
    StoreU16(stream + 2 * i, static_cast<uint16_t>(code));
    return;
  }
  const int64_t bit = i * b;
  uint8_t* p = stream + bit / 8;
  const int shift = static_cast<int>(bit % 8);
  const int n_bytes = (shift + b + 7) / 8;
  const uint32_t mask = ((1u << b) - 1u) << shift;
  const uint32_t value = (code << shift) & mask;
  for (int k = 0; k < n_bytes; ++k) {
    const uint8_t m = static_cast<uint8_t>(mask >> (8 * k));
    p[k] = static_cast<uint8_t>((p[k] & ~m) | (static_cast<uint8_t>(value >> (8 * k)) & m));
  }
}

void AqlmTensor::RoundToHalf() {
  for (float& v : codebooks) v = RoundToHalfSaturating(v);
  for (float& v : scales) v = RoundToHalfSaturating(v);
}

void AqlmTensor::Decode(float* out) const {
  const int g = params.g;
  const int64_t n_groups = this->n_groups();
  std::vector<float> sum(static_cast<size_t>(g));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n_groups; ++j) {
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int m = 0; m < params.m; ++m) {
        const float* c = codeword(m, code(r, j, m));
        for (int i = 0; i < g; ++i) sum[i] += c[i];
      }
      for (int i = 0; i < g && j * g + i < cols; ++i) {
        out[r * cols + j * g + i] = sum[i] * scales[static_cast<size_t>(r)];
      }
    }
  }
}

std::string AqlmFormat::spec() const {
  return "aqlm:m=" + std::to_string(p_.m) + ",b=" + std::to_string(p_.b) +
         ",g=" + std::to_string(p_.g);
}

int64_t AqlmFormat::HeaderBytes(int64_t, int64_t) const {
  return 2 * p_.m * p_.codebook_size() * p_.g;
}

int64_t AqlmFormat::CodeBytes(int64_t cols) const {
  return (p_.groups(cols) * p_.m * p_.b + 7) / 8;
}

int64_t AqlmFormat::RowBytes(int64_t cols) const { return 2 + CodeBytes(cols); }

void AqlmFormat::Pack(const AqlmTensor& t, uint8_t* out) const {
  LOWBIT_CHECK(t.params == p_);
  const int64_t header = HeaderBytes(t.rows, t.cols);
  for (int64_t i = 0; i < header / 2; ++i) {
    StoreU16(out + 2 * i, HalfBitsSaturating(t.codebooks[static_cast<size_t>(i)]));
  }
  const int64_t row_bytes = RowBytes(t.cols);
  const int64_t per_row = t.n_groups() * p_.m;
  for (int64_t r = 0; r < t.rows; ++r) {
    uint8_t* row = out + header + r * row_bytes;
    std::memset(row, 0, static_cast<size_t>(row_bytes));
    StoreU16(row, HalfBitsSaturating(t.scales[static_cast<size_t>(r)]));
    for (int64_t i = 0; i < per_row; ++i) {
      WriteAqlmCode(row + 2, i, p_.b, t.codes[static_cast<size_t>(r * per_row + i)]);
    }
  }
}

AqlmTensor AqlmFormat::Unpack(const uint8_t* packed, int64_t rows, int64_t cols) const {
  AqlmTensor t;
  t.params = p_;
  t.rows = rows;
  t.cols = cols;
  const int64_t header = HeaderBytes(rows, cols);
  t.codebooks.resize(static_cast<size_t>(header / 2));
  for (int64_t i = 0; i < header / 2; ++i) {
    t.codebooks[static_cast<size_t>(i)] = HalfBitsToFloat(LoadU16(packed + 2 * i));
  }
  const int64_t row_bytes = RowBytes(cols);
  const int64_t per_row = t.n_groups() * p_.m;
  t.scales.resize(static_cast<size_t>(rows));
  t.codes.resize(static_cast<size_t>(rows * per_row));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = packed + header + r * row_bytes;
    t.scales[static_cast<size_t>(r)] = HalfBitsToFloat(LoadU16(row));
    for (int64_t i = 0; i < per_row; ++i) {
      t.codes[static_cast<size_t>(r * per_row + i)] = ReadAqlmCode(row + 2, i, p_.b);
    }
  }
  return t;
}

void AqlmFormat::DequantizeRows(const uint8_t* packed, int64_t rows, int64_t cols,
                                int64_t row_begin, int64_t row_end, float* out) const {
  const int g = p_.g, m_count = p_.m;
  const int64_t k = p_.codebook_size();
  const int64_t header = HeaderBytes(rows, cols);
  const int64_t row_bytes = RowBytes(cols);
  const int64_t n_groups = p_.groups(cols);
  float sum[32];
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = packed + header + r * row_bytes;
    const float scale = HalfBitsToFloat(LoadU16(row));
    float* dst = out + (r - row_begin) * cols;
    for (int64_t j = 0; j < n_groups; ++j) {
      for (int i = 0; i < g; ++i) sum[i] = 0.0f;
      for (int m = 0; m < m_count; ++m) {
        const uint32_t code = ReadAqlmCode(row + 2, j * m_count + m, p_.b);
        const uint8_t* c = packed + 2 * ((m * k + code) * g);
        for (int i = 0; i < g; ++i) sum[i] += HalfBitsToFloat(LoadU16(c + 2 * i));
      }
      const int n = static_cast<int>(std::min<int64_t>(g, cols - j * g));
      for (int i = 0; i < n; ++i) dst[j * g + i] = sum[i] * scale;
    }
  }
}

void AqlmFormat::ErrorBound(const float*, int64_t rows, int64_t cols, float* bound) const {
  // Learned per-tensor codebooks: no a-priori per-element bound exists (see the header).
  std::fill(bound, bound + rows * cols, std::numeric_limits<float>::infinity());
}

// ---- k-means ----

void AssignNearest(const float* points, int64_t n, int dim, const float* centroids, int64_t k,
                   uint32_t* out) {
  // ||p - c||^2 = ||p||^2 - 2 p.c + ||c||^2: the centroids transposed to (dim, k) so the inner loop
  // runs over k (vectorizable), distances in float.
  std::vector<float> ct(static_cast<size_t>(dim * k)), norm(static_cast<size_t>(k), 0.0f);
  for (int64_t c = 0; c < k; ++c) {
    for (int d = 0; d < dim; ++d) {
      const float v = centroids[c * dim + d];
      ct[static_cast<size_t>(d * k + c)] = v;
      norm[static_cast<size_t>(c)] += v * v;
    }
  }
  std::vector<float> dist(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    const float* p = points + i * dim;
    std::copy(norm.begin(), norm.end(), dist.begin());
    for (int d = 0; d < dim; ++d) {
      const float a = -2.0f * p[d];
      const float* row = &ct[static_cast<size_t>(d * k)];
      for (int64_t c = 0; c < k; ++c) dist[static_cast<size_t>(c)] += a * row[c];
    }
    int64_t best = 0;
    float best_d = dist[0];
    for (int64_t c = 1; c < k; ++c) {
      if (dist[static_cast<size_t>(c)] < best_d) {
        best_d = dist[static_cast<size_t>(c)];
        best = c;
      }
    }
    out[i] = static_cast<uint32_t>(best);
  }
}

void KMeans(const float* points, int64_t n, int dim, int64_t k, const KMeansOptions& options,
            float* centroids) {
  std::fill(centroids, centroids + k * dim, 0.0f);
  std::vector<float> sample;
  const float* pts = points;
  int64_t ns = n;
  if (options.max_sample > 0 && n > options.max_sample) {
    ns = options.max_sample;
    sample.resize(static_cast<size_t>(ns * dim));
    for (int64_t i = 0; i < ns; ++i) {
      const int64_t src = i * n / ns;
      std::copy(points + src * dim, points + (src + 1) * dim, &sample[static_cast<size_t>(i * dim)]);
    }
    pts = sample.data();
  }
  if (ns <= k) {
    std::copy(pts, pts + ns * dim, centroids);
    return;
  }
  for (int64_t c = 0; c < k; ++c) {
    const int64_t src = c * ns / k;
    std::copy(pts + src * dim, pts + (src + 1) * dim, centroids + c * dim);
  }
  std::vector<uint32_t> assign(static_cast<size_t>(ns));
  std::vector<double> sums(static_cast<size_t>(k * dim));
  std::vector<int64_t> counts(static_cast<size_t>(k));
  for (int it = 0; it < options.iterations; ++it) {
    AssignNearest(pts, ns, dim, centroids, k, assign.data());
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t i = 0; i < ns; ++i) {
      const uint32_t c = assign[static_cast<size_t>(i)];
      ++counts[c];
      for (int d = 0; d < dim; ++d) sums[c * dim + d] += pts[i * dim + d];
    }
    for (int64_t c = 0; c < k; ++c) {
      if (counts[static_cast<size_t>(c)] == 0) continue;  // empty: keep the old centroid
      for (int d = 0; d < dim; ++d) {
        centroids[c * dim + d] = static_cast<float>(sums[static_cast<size_t>(c * dim + d)] /
                                                    static_cast<double>(counts[static_cast<size_t>(c)]));
      }
    }
  }
}

// ---- calibration-free encoder ----

namespace {

// Means of targets per code (codes of one codebook); codewords with no target keep their value.
void UpdateMeans(const float* targets, const uint32_t* codes, int64_t n, int dim, int64_t k,
                 float* codebook) {
  std::vector<double> sums(static_cast<size_t>(k * dim), 0.0);
  std::vector<int64_t> counts(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < n; ++i) {
    ++counts[codes[i]];
    for (int d = 0; d < dim; ++d) sums[codes[i] * dim + d] += targets[i * dim + d];
  }
  for (int64_t c = 0; c < k; ++c) {
    if (counts[static_cast<size_t>(c)] == 0) continue;
    for (int d = 0; d < dim; ++d) {
      codebook[c * dim + d] = static_cast<float>(sums[static_cast<size_t>(c * dim + d)] /
                                                 static_cast<double>(counts[static_cast<size_t>(c)]));
    }
  }
}

// Large codebooks (B > 10) with more points than codewords: exhaustive search over 2^B codewords
// per point is too slow, so code k = (k_hi << b_lo) | k_lo indexes the sum of two residual k-means
// codebooks (2^b_hi and 2^b_lo entries); each codeword then becomes the mean of its points (or
// keeps the sum when it has none).
void TrainStructured(const float* points, int64_t n, int dim, int b, float* codebook,
                     uint32_t* codes) {
  const int b_hi = b / 2, b_lo = b - b_hi;
  const int64_t k_hi = int64_t{1} << b_hi, k_lo = int64_t{1} << b_lo;
  std::vector<float> hi(static_cast<size_t>(k_hi * dim)), lo(static_cast<size_t>(k_lo * dim));
  std::vector<uint32_t> c_hi(static_cast<size_t>(n)), c_lo(static_cast<size_t>(n));
  KMeansOptions opt{6, 32 * k_hi};
  KMeans(points, n, dim, k_hi, opt, hi.data());
  AssignNearest(points, n, dim, hi.data(), k_hi, c_hi.data());
  std::vector<float> residual(points, points + n * dim);
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < dim; ++d) residual[static_cast<size_t>(i * dim + d)] -= hi[c_hi[i] * dim + d];
  }
  opt.max_sample = 32 * k_lo;
  KMeans(residual.data(), n, dim, k_lo, opt, lo.data());
  AssignNearest(residual.data(), n, dim, lo.data(), k_lo, c_lo.data());
  for (int64_t c = 0; c < (int64_t{1} << b); ++c) {
    for (int d = 0; d < dim; ++d) {
      codebook[c * dim + d] = hi[(c >> b_lo) * dim + d] + lo[(c & (k_lo - 1)) * dim + d];
    }
  }
  for (int64_t i = 0; i < n; ++i) codes[i] = (c_hi[i] << b_lo) | c_lo[i];
  UpdateMeans(points, codes, n, dim, int64_t{1} << b, codebook);
}

}  // namespace

AqlmTensor EncodeAqlmIdentity(const AqlmParams& p, const float* x, int64_t rows, int64_t cols,
                              int refine_passes) {
  AqlmTensor t;
  t.params = p;
  t.rows = rows;
  t.cols = cols;
  const int g = p.g, M = p.m;
  const int64_t K = p.codebook_size();
  const int64_t G = p.groups(cols);
  const int64_t N = rows * G;
  t.scales.resize(static_cast<size_t>(rows));
  t.codebooks.assign(static_cast<size_t>(M * K * g), 0.0f);
  t.codes.assign(static_cast<size_t>(N * M), 0);

  // Normalized groups V: (N, g), row-scaled, zero-padded.
  std::vector<float> v(static_cast<size_t>(N * g), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double ss = 0.0;
    int64_t finite = 0;
    for (int64_t c = 0; c < cols; ++c) {
      if (std::isfinite(xr[c])) {
        ss += static_cast<double>(xr[c]) * xr[c];
        ++finite;
      }
    }
    const float rms = finite ? static_cast<float>(std::sqrt(ss / static_cast<double>(finite))) : 0.0f;
    const float s = RoundToHalfSaturating(std::min(rms, kHalfMax));
    t.scales[static_cast<size_t>(r)] = s;
    if (!(s > 0.0f)) continue;
    for (int64_t c = 0; c < cols; ++c) {
      const float q = std::isfinite(xr[c]) ? xr[c] / s : 0.0f;
      v[static_cast<size_t>(r * G * g + c)] = std::clamp(q, -kHalfMax, kHalfMax);
    }
  }

  // Per-codebook code arrays (N) for the helpers; copied into t.codes at the end.
  std::vector<std::vector<uint32_t>> codes(static_cast<size_t>(M),
                                           std::vector<uint32_t>(static_cast<size_t>(N), 0));
  const bool exact = N <= K;  // every group gets its own codeword
  const bool structured = !exact && p.b > 10;
  std::vector<float> residual = v;
  auto codebook = [&](int m) { return &t.codebooks[static_cast<size_t>(m * K * g)]; };
  auto add = [&](int m, float sign) {
    const float* cb = codebook(m);
    for (int64_t i = 0; i < N; ++i) {
      const float* c = cb + codes[m][i] * g;
      for (int d = 0; d < g; ++d) residual[static_cast<size_t>(i * g + d)] += sign * c[d];
    }
  };
  for (int m = 0; m < M; ++m) {
    if (exact) {
      std::copy(residual.begin(), residual.end(), codebook(m));
      for (int64_t i = 0; i < N; ++i) codes[m][i] = static_cast<uint32_t>(i);
    } else if (structured) {
      TrainStructured(residual.data(), N, g, p.b, codebook(m), codes[m].data());
    } else {
      KMeans(residual.data(), N, g, K, KMeansOptions{6, 16 * K}, codebook(m));
      AssignNearest(residual.data(), N, g, codebook(m), K, codes[m].data());
    }
    add(m, -1.0f);
  }
  // Block-coordinate refinement: codebook m's codes and codewords given the others.
  for (int pass = 0; pass < refine_passes && !exact && M > 1; ++pass) {
    for (int m = 0; m < M; ++m) {
      add(m, +1.0f);  // residual = target of codebook m
      if (!structured) AssignNearest(residual.data(), N, g, codebook(m), K, codes[m].data());
      UpdateMeans(residual.data(), codes[m].data(), N, g, K, codebook(m));
      add(m, -1.0f);
    }
  }
  // Round to binary16, then choose each codebook's codes again against the rounded codewords.
  t.RoundToHalf();
  residual = v;
  for (int m = 0; m < M; ++m) add(m, -1.0f);
  if (!exact && !structured) {
    for (int m = 0; m < M; ++m) {
      add(m, +1.0f);
      AssignNearest(residual.data(), N, g, codebook(m), K, codes[m].data());
      add(m, -1.0f);
    }
  }
  for (int64_t i = 0; i < N; ++i) {
    for (int m = 0; m < M; ++m) t.codes[static_cast<size_t>(i * M + m)] = codes[m][i];
  }
  return t;
}

Status AqlmFormat::Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const {
  if (rows <= 0 || cols <= 0) {
    return InvalidArgument("aqlm: rows = " + std::to_string(rows) + ", cols = " +
                           std::to_string(cols) + ", expected > 0");
  }
  Pack(EncodeAqlmIdentity(p_, x, rows, cols), out);
  return Status::Ok();
}

Result<FormatPtr> MakeAqlmFormat(const AqlmParams& params) {
  if (params.m < 1 || params.m > 8) {
    return InvalidArgument("format 'aqlm': m=" + std::to_string(params.m) +
                           " is out of range [1, 8]");
  }
  if (params.b < 1 || params.b > 16) {
    return InvalidArgument("format 'aqlm': b=" + std::to_string(params.b) +
                           " is out of range [1, 16]");
  }
  if (params.g < 1 || params.g > 32) {
    return InvalidArgument("format 'aqlm': g=" + std::to_string(params.g) +
                           " is out of range [1, 32]");
  }
  return FormatPtr(std::make_shared<AqlmFormat>(params));
}

void RegisterAdditiveFamily(FormatRegistry& registry) {
  registry.AddFamily(
      {"aqlm", "Additive codebook quantization (AQLM)",
       "m=1..8 codebooks, b=1..16 bits per code, g=1..32 weights per group", "docs/formats/additive.md",
       [](SpecParams& sp) -> Result<FormatPtr> {
         AqlmParams p;
         LOWBIT_ASSIGN_OR_RETURN(const int64_t m, sp.GetInt("m", 2, 1, 8));
         LOWBIT_ASSIGN_OR_RETURN(const int64_t b, sp.GetInt("b", 8, 1, 16));
         LOWBIT_ASSIGN_OR_RETURN(const int64_t g, sp.GetInt("g", 8, 1, 32));
         p.m = static_cast<int>(m);
         p.b = static_cast<int>(b);
         p.g = static_cast<int>(g);
         return MakeAqlmFormat(p);
       }});
  registry.AddPreset({"aqlm_1x16g8", "aqlm:m=1,b=16,g=8",
                      "AQLM 1 codebook x 16 bits, groups of 8 (~2 bits + 2^16-entry codebook)"});
  registry.AddPreset({"aqlm_2x8g8", "aqlm:m=2,b=8,g=8", "AQLM 2 codebooks x 8 bits, groups of 8 (~2 bits)"});
  registry.AddPreset({"aqlm_1x8g8", "aqlm:m=1,b=8,g=8", "AQLM 1 codebook x 8 bits, groups of 8 (~1 bit)"});
  registry.AddPreset({"aqlm_4x8g8", "aqlm:m=4,b=8,g=8", "AQLM 4 codebooks x 8 bits, groups of 8 (~4 bits)"});
}

}  // namespace lowbit
