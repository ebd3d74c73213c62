// `lowbit qdq --format SPEC [--rows R]`: quantize -> dequantize floats read from stdin.
// For scripting and cross-checks: input is whitespace-separated floats (row-major, R rows of equal
// length, blocks along a row); output is one value per line printed with %.9g (exact for float32).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <memory>

#include "commands.h"
#include "lowbit/format_registry.h"

namespace lowbit::cli {
namespace {

struct QdqOptions {
  std::string format;
  int64_t rows = 1;
};

Result<std::vector<float>> ReadFloats(std::istream& in) {
  std::vector<float> values;
  std::string token;
  while (in >> token) {
    errno = 0;
    char* end = nullptr;
    const float v = std::strtof(token.c_str(), &end);
    if (end == token.c_str() || *end != '\0') {
      return InvalidArgument("stdin: value " + std::to_string(values.size() + 1) + " ('" + token +
                             "') is not a number");
    }
    values.push_back(v);  // out-of-range text becomes +-inf or a subnormal, as strtof says
  }
  return values;
}

int RunQdq(const QdqOptions& options) {
  Result<FormatPtr> format = ParseFormat(options.format);
  if (!format.ok()) return ReportError(format.status());
  Result<std::vector<float>> values = ReadFloats(std::cin);
  if (!values.ok()) return ReportError(values.status());
  const int64_t n = static_cast<int64_t>(values->size());
  if (n == 0) return ReportError(InvalidArgument("stdin: no values"));
  if (options.rows < 1 || n % options.rows != 0) {
    return ReportError(InvalidArgument("stdin: " + std::to_string(n) + " values do not split into " +
                                       std::to_string(options.rows) + " rows of equal length"));
  }
  const int64_t rows = options.rows;
  const int64_t cols = n / rows;
  const Format& f = **format;
  std::vector<uint8_t> packed(static_cast<size_t>(f.PackedBytes(rows, cols)));
  Status st = f.Quantize(values->data(), rows, cols, packed.data());
  if (!st.ok()) return ReportError(st);
  std::vector<float> out(static_cast<size_t>(n));
  f.Dequantize(packed.data(), rows, cols, out.data());
  for (float v : out) std::printf("%.9g\n", static_cast<double>(v));
  return kExitOk;
}

}  // namespace

void AddQdqCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "qdq", "Quantize then dequantize floats from stdin; prints one value per line (%.9g)");
  auto options = std::make_shared<QdqOptions>();  // owned by the callback below
  cmd->add_option("--format,-f", options->format, "Format spec or preset (see `lowbit formats`)")
      ->required();
  cmd->add_option("--rows,-r", options->rows, "Number of rows the values form (row-major)")
      ->check(CLI::PositiveNumber);
  cmd->callback([=] { *exit_code = RunQdq(*options); });
}

}  // namespace lowbit::cli
