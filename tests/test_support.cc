#include "test_support.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace lowbit::testing {

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::string SharedDataPath(const std::string& relative) {
  if (const char* dir = std::getenv("LOWBIT_DATA_DIR")) return std::string(dir) + "/" + relative;
  return std::string(LOWBIT_SOURCE_DIR) + "/../shared/data/" + relative;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

CliRun RunShell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe == nullptr) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

CliRun RunCli(const std::string& args, bool merge_stderr) {
  return RunShell(std::string(LOWBIT_CLI) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null"));
}

std::vector<float> RandomFloats(std::mt19937_64& rng, size_t n, int kind) {
  std::vector<float> v(n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> heavy(2.0f);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exp_dist(-30, 30);
  for (auto& x : v) {
    switch (kind % kNumRandomKinds) {
      case 0: x = normal(rng); break;
      case 1: x = heavy(rng); break;
      case 2: x = normal(rng) * 1e-6f; break;
      default: x = std::ldexp(uni(rng), exp_dist(rng)); break;
    }
  }
  return v;
}

}  // namespace lowbit::testing
