// The `lowbit` binary as a user drives it: exit codes, JSON shape, qdq on stdin.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "test_support.h"

namespace {

using lowbit::testing::CliRun;

// Runs `lowbit <args>` through the shell with stdin_text piped in; stderr is discarded.
CliRun RunCli(const std::string& args, const std::string& stdin_text = "") {
  return lowbit::testing::RunShell("printf '%s' '" + stdin_text + "' | " + LOWBIT_CLI + " " + args +
                                   " 2>/dev/null");
}

TEST(Cli, FormatsJsonListsEveryPresetWithRequiredKeys) {
  CliRun r = RunCli("formats --json");
  ASSERT_EQ(r.exit_code, 0);
  auto json = nlohmann::json::parse(r.out);
  ASSERT_TRUE(json.is_array());
  EXPECT_GE(json.size(), 30u);
  std::set<std::string> families;
  for (const auto& row : json) {
    for (const char* key : {"name", "family", "bits_per_weight", "block_size", "description"}) {
      EXPECT_TRUE(row.contains(key)) << key;
    }
    EXPECT_GT(row["bits_per_weight"].get<double>(), 1.0);
    families.insert(row["family"].get<std::string>());
  }
  // The nine families of the format library (plus plain floats).
  for (const char* family : {"int", "exmy", "bfp", "bm", "bl", "mx", "fp6split", "gguf", "nf4"}) {
    EXPECT_TRUE(families.count(family)) << "no preset of family " << family;
  }
}

TEST(Cli, QdqRejectsBadInputWithExitCode2) {
  EXPECT_EQ(RunCli("qdq --format no_such_format", "1 2 3").exit_code, 2);
  EXPECT_EQ(RunCli("qdq --format q8_0", "1 2 banana").exit_code, 2);
  EXPECT_EQ(RunCli("qdq --format q8_0 --rows 2", "1 2 3").exit_code, 2);
  EXPECT_EQ(RunCli("qdq --format q8_0", "").exit_code, 2);
  EXPECT_EQ(RunCli("qdq", "1").exit_code, 2);
  EXPECT_EQ(RunCli("no-such-command").exit_code, 2);
}

TEST(Cli, QdqPrintsOneValuePerInput) {
  CliRun r = RunCli("qdq --format q8_0 --rows 2", "0 1 2 3 4 5 6 7");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 8);
}

}  // namespace
