// Helpers shared by every test binary.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lowbit::testing {

// True under CI=true: data that a test needs must then exist (missing data fails instead of skipping).
bool InCi();

// Path of a file under ../shared/data (next to the checkout), e.g. "stories260K/stories260K.gguf".
std::string SharedDataPath(const std::string& relative);

// Reads a whole file; empty on failure.
std::vector<uint8_t> ReadFileBytes(const std::string& path);

// A command's exit status (-1 if it did not exit normally) and what it wrote to stdout.
struct CliRun {
  int exit_code;
  std::string out;
};
// Runs a shell command line through popen.
CliRun RunShell(const std::string& command);
// Runs `lowbit <args>` (the CLI built with the tests); stderr is discarded, or captured together
// with stdout when merge_stderr.
CliRun RunCli(const std::string& args, bool merge_stderr = false);

// Random floats in a few shapes that stress quantizers: normal, heavy-tailed, tiny, mixed-scale.
std::vector<float> RandomFloats(std::mt19937_64& rng, size_t n, int kind);
constexpr int kNumRandomKinds = 4;

}  // namespace lowbit::testing

// Skips the test when a needed file is missing on a developer machine; fails it under CI=true.
#define LOWBIT_REQUIRE_FILE(path)                                                        \
  do {                                                                                   \
    if (::lowbit::testing::ReadFileBytes(path).empty()) {                                \
      if (::lowbit::testing::InCi()) FAIL() << "required file missing under CI: " << (path); \
      GTEST_SKIP() << "file not found (tests using it are skipped outside CI): " << (path); \
    }                                                                                    \
  } while (0)
