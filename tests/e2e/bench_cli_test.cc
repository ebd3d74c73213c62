// `lowbit bench` as a user drives it: the JSON report's shape and internal consistency, the --out
// file, and exit code 2 for bad options. No timing is asserted on (benchmarks are never timed
// assertions); only that every measured quantity is present, positive and consistent with the
// others.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>

#include "kernels/kernel.h"
#include "test_support.h"

namespace {

using lowbit::testing::CliRun;
using lowbit::testing::RunCli;

double RelDiff(double a, double b) { return std::abs(a - b) / std::max(std::abs(a), std::abs(b)); }

TEST(BenchCli, QuickJsonReportsEveryFormatLevelThreadCountShapeAndN) {
  const std::string out_path = (std::filesystem::temp_directory_path() /
                                ("lowbit_bench_" + std::to_string(::getpid()) + ".json"))
                                   .string();
  CliRun r =
      RunCli("bench --quick --json --no-e2e --formats q4_0,mxfp4 --threads 1,2 --out " + out_path);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);

  // --out holds the same report (written atomically: no temporary file left beside it).
  std::ifstream in(out_path);
  ASSERT_TRUE(in.good());
  EXPECT_EQ(nlohmann::json::parse(in), j);
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(out_path).parent_path())) {
    EXPECT_EQ(entry.path().string().rfind(out_path + ".tmp", 0), std::string::npos) << entry.path();
  }
  std::filesystem::remove(out_path);

  ASSERT_TRUE(j.contains("bandwidth"));
  const nlohmann::json& bw = j["bandwidth"];
  for (const char* key : {"dram_gbps_1t", "dram_gbps_nt", "l3_gbps"}) {
    ASSERT_TRUE(bw.contains(key)) << key;
    EXPECT_GT(bw[key].get<double>(), 0.0) << key;
  }
  EXPECT_EQ(bw["nt"].get<int>(), 2);
  // The DRAM buffer is at least 4x the L3 the report states, the L3 buffer half of it.
  EXPECT_GE(bw["dram_buffer_bytes"].get<int64_t>(), 4 * j["machine"]["l3_bytes"].get<int64_t>());
  EXPECT_EQ(bw["l3_buffer_bytes"].get<int64_t>(), j["machine"]["l3_bytes"].get<int64_t>() / 2);

  // Expected rows: {f32, q4_0, mxfp4} x every level up to the active one x threads {1, 2} x the
  // two --quick shapes x n {1, 4}, each exactly once.
  std::set<std::string> isas;
  for (int i = 0; i <= static_cast<int>(lowbit::kernels::ActiveIsa()); ++i) {
    isas.insert(lowbit::kernels::IsaName(static_cast<lowbit::kernels::Isa>(i)));
  }
  using Key = std::tuple<std::string, std::string, int, int64_t, int64_t, int64_t>;
  std::map<Key, int> seen;
  ASSERT_TRUE(j["matvec"].is_array());
  for (const nlohmann::json& row : j["matvec"]) {
    for (const char* key :
         {"format", "isa", "kernel", "threads", "rows", "cols", "n", "weight_bytes", "weight_gbps",
          "gflops", "fraction_of_dram", "speedup_vs_f32", "seconds", "seconds_median"}) {
      ASSERT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
    }
    const std::string format = row["format"];
    const int64_t rows = row["rows"], cols = row["cols"], n = row["n"];
    const int threads = row["threads"];
    ++seen[{format, row["isa"].get<std::string>(), threads, rows, cols, n}];
    EXPECT_GT(row["weight_gbps"].get<double>(), 0.0);
    EXPECT_GT(row["gflops"].get<double>(), 0.0);
    EXPECT_GT(row["fraction_of_dram"].get<double>(), 0.0);
    EXPECT_GT(row["speedup_vs_f32"].get<double>(), 0.0);
    EXPECT_LE(row["seconds"].get<double>(), row["seconds_median"].get<double>());
    // Without --resident every call streams another copy: the quick shapes are far below the
    // 128 MiB floor of the copies' total.
    EXPECT_GT(row["copies"].get<int64_t>(), 1) << row.dump();
    // Storage bytes, computed by hand: f32 4 bytes per weight; q4_0 18 bytes per 32 weights
    // (fp16 scale + 16 bytes of nibbles); mxfp4 17 bytes per 32 (E8M0 scale + 16 bytes).
    const int64_t weights = rows * cols;
    const int64_t bytes = format == "f32"    ? 4 * weights
                          : format == "q4_0" ? weights / 32 * 18
                                             : weights / 32 * 17;
    EXPECT_EQ(row["weight_bytes"].get<int64_t>(), bytes) << format;
    // The derived figures follow from the best time and the same-thread-count DRAM bandwidth.
    const double s = row["seconds"];
    EXPECT_LT(RelDiff(row["weight_gbps"].get<double>() * s, bytes * 1e-9), 1e-9);
    EXPECT_LT(RelDiff(row["gflops"].get<double>() * s, 2.0 * weights * n * 1e-9), 1e-9);
    const double dram = bw["dram_gbps_by_threads"][std::to_string(threads)];
    EXPECT_LT(
        RelDiff(row["fraction_of_dram"].get<double>() * dram, row["weight_gbps"].get<double>()),
        1e-9);
    if (format == "f32") {
      EXPECT_EQ(row["speedup_vs_f32"].get<double>(), 1.0);
      EXPECT_EQ(row["kernel"], "f32");
    }
  }
  size_t expected = 0;
  for (const char* format : {"f32", "q4_0", "mxfp4"}) {
    for (const std::string& isa : isas) {
      for (int threads : {1, 2}) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{256, 1024}, {512, 2048}}) {
          for (int64_t n : {1, 4}) {
            ++expected;
            EXPECT_EQ((seen[{format, isa, threads, rows, cols, n}]), 1)
                << format << " " << isa << " t=" << threads << " " << rows << "x" << cols
                << " n=" << n;
          }
        }
      }
    }
  }
  EXPECT_EQ(j["matvec"].size(), expected);
  EXPECT_TRUE(j["e2e"].is_null());
  EXPECT_EQ(j["e2e_skipped"], "--no-e2e");
}

// --resident reuses one copy of each matrix (the kernels' cache-resident compute rate), says so
// in the JSON settings and in the table, and prints no DRAM target verdict (it does not apply).
TEST(BenchCli, ResidentReusesOneCopyAndGivesNoTargetVerdict) {
  const std::string args =
      "bench --quick --no-e2e --resident --formats q4_0 --threads 1 --n 1 --shapes 64x256";
  const CliRun j_run = RunCli(args + " --json");
  ASSERT_EQ(j_run.exit_code, 0) << j_run.out;
  const nlohmann::json j = nlohmann::json::parse(j_run.out);
  EXPECT_EQ(j["settings"]["resident"], true);
  ASSERT_FALSE(j["matvec"].empty());
  for (const nlohmann::json& row : j["matvec"])
    EXPECT_EQ(row["copies"].get<int64_t>(), 1) << row.dump();
  const CliRun table = RunCli(args);
  ASSERT_EQ(table.exit_code, 0) << table.out;
  EXPECT_NE(table.out.find("--resident: one copy"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("Target:"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("NOT met"), std::string::npos) << table.out;
}

// --e2e-formats stored: a calibrated (AQLM) file decodes as stored, next to its f32 expansion,
// and the bytes ratio is that of the packed matrices.
TEST(BenchCli, E2eStoredDecodesAnAqlmFileAsStored) {
  const std::string model = lowbit::testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(model);
  const std::string aqlm = (std::filesystem::temp_directory_path() /
                            ("lowbit_bench_aqlm_" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  ASSERT_EQ(RunCli("quantize -q -m " + model + " -o " + aqlm +
                   " --method aqlm:aqlm_2x8g8 --calib self --calib-seqs 2 --calib-len 32")
                .exit_code,
            0);
  const CliRun r =
      RunCli("bench --quick --json --formats q4_0 --threads 1 --shapes 64x64 --n 1 -m " + aqlm +
             " --e2e-formats stored --e2e-tokens 4");
  std::filesystem::remove(aqlm);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const auto& results = j["e2e"]["results"];
  ASSERT_EQ(results.size(), 2u) << j["e2e"].dump();
  EXPECT_EQ(results[0]["format"], "f32");
  EXPECT_EQ(results[1]["format"], "stored");
  EXPECT_GT(results[1]["tokens_per_s"].get<double>(), 0.0);
  // The stored file is smaller than its f32 expansion (AQLM linears, f32 embedding and norms).
  EXPECT_GT(results[1]["bytes_ratio_vs_f32"].get<double>(), 1.0);
}

TEST(BenchCli, BadOptionsExitWith2AndNameTheOption) {
  struct Case {
    const char* args;
    const char* message;  // expected in the output
  };
  for (const Case& c :
       {Case{"bench --formats no_such_format", "--formats"},
        Case{"bench --e2e-formats q4_k", "decode-only"}, Case{"bench --isa sse9", "--isa"},
        Case{"bench --threads 0", "--threads"}, Case{"bench --threads two", "--threads"},
        Case{"bench --shapes 12by4", "--shapes"}, Case{"bench --n 1,-3", "--n"},
        Case{"bench --model /no/such/model.gguf", "--model"},
        Case{"bench --no-such-flag", "no-such-flag"}}) {
    const CliRun r = RunCli(c.args, /*merge_stderr=*/true);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
  }
}

}  // namespace
