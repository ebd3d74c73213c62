// Matvec benchmark inputs and timing (src/eval/bench.h, docs/bench.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "eval/bench.h"
#include "runtime/linear.h"
#include "runtime/thread_pool.h"

namespace lowbit::bench {
namespace {

constexpr float kWeightStddev = 0.02f;  // typical of trained LLM linear layers
constexpr int kMaxRedraws = 10000;

bool AllFinite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// Random bytes for a decode-only format's (band_rows, cols) band, written to out. A block format
// (header-free rows made of whole blocks) is repaired block by block, anything else row by row.
Status FillRandomDecodable(const Format& f, int64_t band_rows, int64_t cols, std::mt19937_64& rng,
                           uint8_t* out) {
  const int64_t row_bytes = f.RowBytes(cols);
  const int64_t bs = f.block_size();
  const bool blockwise = bs > 0 && f.block_bytes() > 0 && f.HeaderBytes(1, bs) == 0 &&
                         f.RowBytes(bs) == f.block_bytes() &&
                         row_bytes == (cols + bs - 1) / bs * f.block_bytes();
  // Unit of redrawing: one block (decoded as a 1 x bs tensor) or one row.
  const int64_t unit_bytes = blockwise ? f.block_bytes() : row_bytes;
  const int64_t unit_cols = blockwise ? bs : cols;
  const int64_t n_units = band_rows * row_bytes / unit_bytes;
  std::vector<float> decoded(static_cast<size_t>(unit_cols));
  for (int64_t u = 0; u < n_units; ++u) {
    uint8_t* p = out + u * unit_bytes;
    int tries = 0;
    do {
      if (++tries > kMaxRedraws) {
        return InvalidArgument("format " + f.spec() +
                               ": random bytes never decoded to finite values; cannot build "
                               "benchmark weights for a decode-only format");
      }
      for (int64_t i = 0; i < unit_bytes; ++i) p[i] = static_cast<uint8_t>(rng());
      f.DequantizeRows(p, 1, unit_cols, 0, 1, decoded.data());
    } while (!AllFinite(decoded));
  }
  return Status::Ok();
}

}  // namespace

Result<BenchMatrix> MakeBenchMatrix(const FormatPtr& format, int64_t rows, int64_t cols,
                                    uint64_t seed) {
  if (rows <= 0 || cols <= 0) return InvalidArgument("matrix shape must be positive");
  BenchMatrix m;
  m.format = format;
  m.rows = rows;
  m.cols = cols;
  std::mt19937_64 rng(seed);
  const int64_t band = std::min(rows, kBandRows);
  auto random_floats = [&](int64_t n) {
    std::normal_distribution<float> normal(0.0f, kWeightStddev);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = normal(rng);
    return v;
  };

  if (format == nullptr) {
    m.packed = AlignedBytes(4 * rows * cols);
    const std::vector<float> values = random_floats(band * cols);
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(m.packed.data() + 4 * r * cols, values.data() + (r % band) * cols, 4 * cols);
    }
    return m;
  }

  const Format& f = *format;
  m.packed = AlignedBytes(f.PackedBytes(rows, cols));
  const int64_t header = f.HeaderBytes(rows, cols);
  const int64_t row_bytes = f.RowBytes(cols);
  if (f.HeaderBytes(band, cols) != header) {
    // A header whose size depends on the row count: quantize the whole band-repeating matrix.
    if (!f.can_quantize()) {
      return Unimplemented("format " + f.spec() +
                           " is decode-only with a per-tensor header: no "
                           "benchmark weights can be built for it");
    }
    const std::vector<float> values = random_floats(band * cols);
    std::vector<float> full(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(full.data() + r * cols, values.data() + (r % band) * cols, 4 * cols);
    }
    LOWBIT_RETURN_IF_ERROR(f.Quantize(full.data(), rows, cols, m.packed.data()));
    return m;
  }
  // header + band rows. The band's per-tensor fields (a tensor scale, a codebook) hold for the
  // whole matrix, which consists of the band's rows only.
  std::vector<uint8_t> band_bytes(static_cast<size_t>(f.PackedBytes(band, cols)));
  if (f.can_quantize()) {
    const std::vector<float> values = random_floats(band * cols);
    LOWBIT_RETURN_IF_ERROR(f.Quantize(values.data(), band, cols, band_bytes.data()));
  } else if (header == 0) {
    m.random_bytes = true;
    LOWBIT_RETURN_IF_ERROR(FillRandomDecodable(f, band, cols, rng, band_bytes.data()));
  } else {
    return Unimplemented("format " + f.spec() +
                         " is decode-only with a per-tensor header: no "
                         "benchmark weights can be built for it");
  }
  std::memcpy(m.packed.data(), band_bytes.data(), static_cast<size_t>(header));
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(m.packed.data() + header + r * row_bytes,
                band_bytes.data() + header + (r % band) * row_bytes,
                static_cast<size_t>(row_bytes));
  }
  return m;
}

std::string KernelNameFor(const Format* format, kernels::Isa isa) {
  if (format == nullptr) return "f32";
  if (std::optional<kernels::KernelEntry> entry = kernels::FindKernel(*format, isa)) {
    return entry->name;
  }
  return "fallback";
}

MatvecBench::MatvecBench(const BenchMatrix& matrix, kernels::Isa isa, int64_t l3_bytes,
                         bool resident)
    : isa_(isa),
      rows_(matrix.rows),
      cols_(matrix.cols),
      weight_bytes_(matrix.n_bytes()),
      kernel_(KernelNameFor(matrix.format.get(), isa)) {
  const int64_t stride = (weight_bytes_ + 63) / 64 * 64;
  const int64_t n_copies =
      resident ? 1
               : std::clamp<int64_t>(
                     (std::max(4 * l3_bytes, kMinStreamBytes) + weight_bytes_ - 1) / weight_bytes_,
                     1, kMaxCopies);
  copies_ = AlignedBytes(n_copies * stride);
  views_.resize(static_cast<size_t>(n_copies));
  for (int64_t c = 0; c < n_copies; ++c) {
    uint8_t* dst = copies_.data() + c * stride;
    std::memcpy(dst, matrix.packed.data(), static_cast<size_t>(weight_bytes_));
    WeightView& w = views_[static_cast<size_t>(c)];
    w.name = "bench";
    w.format = matrix.format;
    w.data = dst;
    w.rows = rows_;
    w.cols = cols_;
    PrepareWeightForIsa(w, isa_);
  }
}

void MatvecBench::Multiply(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  Linear(views_[next_], x, n_tokens, y, pool, isa_);
  next_ = next_ + 1 == views_.size() ? 0 : next_ + 1;
}

MatvecResult MatvecBench::Run(const MatvecCase& c, ThreadPool& pool, const TimingOptions& options) {
  LOWBIT_CHECK(c.isa == isa_ && c.n_tokens >= 1 && pool.size() == c.threads);
  std::mt19937_64 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.n_tokens * cols_));
  for (float& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(c.n_tokens * rows_));
  auto call = [&] { Multiply(x.data(), c.n_tokens, y.data(), pool); };
  MatvecResult r;
  r.kernel = kernel_;
  r.weight_bytes = weight_bytes_;
  r.copies = copies();
  r.timing = TimeCalls(call, options);
  r.weight_gbps = static_cast<double>(weight_bytes_) / r.timing.best_s * 1e-9;
  r.gflops = 2.0 * static_cast<double>(rows_) * static_cast<double>(cols_) *
             static_cast<double>(c.n_tokens) / r.timing.best_s * 1e-9;
  return r;
}

}  // namespace lowbit::bench
