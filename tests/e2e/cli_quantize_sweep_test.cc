// `lowbit quantize` and `lowbit sweep` as a user drives them, on stories260K: report JSON, rule
// files, activation formats applied on re-read, sweep outputs, and exit code 2 for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using lowbit::testing::SharedDataPath;

using lowbit::testing::CliRun;
using lowbit::testing::RunCli;

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("lowbit_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(CliQuantize, JsonReportRulesAndActivationsOnReRead) {
  const std::string model = SharedDataPath("stories260K/stories260K.gguf");
  const std::string text = SharedDataPath("text/tinystories_valid_head.txt");
  LOWBIT_REQUIRE_FILE(model);
  const fs::path dir = TempDir("quantize");
  {
    std::ofstream rules(dir / "rules.txt");
    rules << "# embeddings at 8 bits\ntoken_embd.weight = q8_0\nblk.4.* = keep\n";
  }
  const std::string out = (dir / "w6a8.gguf").string();
  CliRun r = RunCli("quantize -m " + model + " -o " + out + " -w bfp6 --acts mxint8 --rules " +
                    (dir / "rules.txt").string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["llama_cpp_compatible"].get<bool>());
  EXPECT_DOUBLE_EQ(j["activation_memory_density"].get<double>(), 32.0 / 8.25);  // 64-wide rows
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    if (name == "token_embd.weight") {
      EXPECT_EQ(t["format"], "q8_0");
    }
    if (name.rfind("blk.4.", 0) == 0) {
      EXPECT_EQ(t["note"], "kept") << name;
    }
    if (name == "blk.0.attn_q.weight") {
      EXPECT_EQ(t["format"], "bfp6");
      EXPECT_GT(t["sqnr_db"].get<double>(), 25.0);  // 5 mantissa bits: ~30 dB
    }
  }
  // eval applies the file's activation format: same numbers as quantizing in memory by hand.
  const std::string common = " --text " + text + " --ctx 128 --chunks 2 --json";
  const nlohmann::json from_file = nlohmann::json::parse(RunCli("eval -m " + out + common).out);
  const nlohmann::json by_hand = nlohmann::json::parse(
      RunCli("eval -m " + out + " --acts mxint8" + common).out);
  const nlohmann::json no_acts = nlohmann::json::parse(
      RunCli("eval -m " + out + " --acts f32" + common).out);
  EXPECT_EQ(from_file["ppl"], by_hand["ppl"]);
  EXPECT_NE(from_file["ppl"], no_acts["ppl"]);

  // Bad input: exit 2, nothing written.
  EXPECT_EQ(RunCli("quantize -m " + model + " -o " + (dir / "x.gguf").string() + " -w nosuch")
                .exit_code, 2);
  EXPECT_EQ(RunCli("quantize -m " + model + " -o " + (dir / "x.gguf").string() +
                   " -w q4_0 --rule 'blk.*'").exit_code, 2);
  EXPECT_EQ(RunCli("quantize -m " + model + " -o " + (dir / "x.gguf").string() + " -w q4_k")
                .exit_code, 2);
  EXPECT_EQ(RunCli("quantize -m " + (dir / "missing.gguf").string() + " -o " +
                   (dir / "x.gguf").string() + " -w q4_0").exit_code, 2);
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
}

TEST(CliQuantize, AqlmMethodWritesCodebookTensorsThatEvalReads) {
  const std::string model = SharedDataPath("stories260K/stories260K.gguf");
  const std::string text = SharedDataPath("text/tinystories_valid_head.txt");
  LOWBIT_REQUIRE_FILE(model);
  const fs::path dir = TempDir("aqlm");
  const std::string out = (dir / "aqlm.gguf").string();
  CliRun r = RunCli("quantize -m " + model + " -o " + out +
                    " --method aqlm:aqlm_1x8g8 --calib self --calib-seqs 4 --calib-len 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  int calibrated = 0;
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    if (name.rfind("blk.", 0) == 0 && t["rows"].get<int>() > 1) {
      EXPECT_EQ(t["format"], "aqlm_1x8g8") << name;
      EXPECT_EQ(t["note"], "calibrated") << name;
      ++calibrated;
    } else {
      EXPECT_EQ(t["note"], "kept") << name;  // embeddings and norms as stored
    }
  }
  EXPECT_EQ(calibrated, 35);  // 7 linears x 5 blocks
  const nlohmann::json e = nlohmann::json::parse(
      RunCli("eval -m " + out + " --reference " + model + " --text " + text +
             " --ctx 128 --chunks 2 --json").out);
  EXPECT_GT(e["top1_agreement"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(e["kld_mean"].get<double>()));
  EXPECT_EQ(RunCli("quantize -m " + model + " -o " + out + " --method gptq").exit_code, 2);
}

// --fine-tune-steps: the tuned norm gains of every block are written (f32, as the input stores
// them) next to the codebooks tuned for them, and the file evaluates.
TEST(CliQuantize, AqlmFineTuneWritesTunedNorms) {
  const std::string model = SharedDataPath("stories260K/stories260K.gguf");
  const std::string text = SharedDataPath("text/tinystories_valid_head.txt");
  LOWBIT_REQUIRE_FILE(model);
  const fs::path dir = TempDir("aqlm_ft");
  const std::string out = (dir / "aqlm_ft.gguf").string();
  CliRun r = RunCli("quantize -m " + model + " -o " + out +
                    " --method aqlm:aqlm_2x8g8 --calib self --calib-seqs 4 --calib-len 32"
                    " --fine-tune-steps 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  int tuned_norms = 0;
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    if (name.find("_norm.weight") != std::string::npos && name.rfind("blk.", 0) == 0 &&
        t["note"] == "calibrated (tuned norm)") {
      ++tuned_norms;
    }
  }
  // 2 gains x 5 blocks; a gain that keep-best left unchanged is written as "kept".
  EXPECT_GT(tuned_norms, 0);
  EXPECT_LE(tuned_norms, 10);
  const nlohmann::json e = nlohmann::json::parse(
      RunCli("eval -m " + out + " --reference " + model + " --text " + text +
             " --ctx 128 --chunks 2 --json").out);
  EXPECT_GT(e["top1_agreement"].get<double>(), 0.5);
}

// finetune-aqlm on a file quantize wrote: JSON result, the tuned codebooks written next to the
// frozen rest, a lower KLD against the teacher on unseen text; a student that is not AQLM is bad
// input (exit 2, no output file).
TEST(CliFinetuneAqlm, TunesAnAqlmFileAgainstItsTeacher) {
  const std::string model = SharedDataPath("stories260K/stories260K.gguf");
  const std::string text = SharedDataPath("text/tinystories_valid_head.txt");
  LOWBIT_REQUIRE_FILE(model);
  LOWBIT_REQUIRE_FILE(text);
  const fs::path dir = TempDir("aqlm_global");
  const std::string student = (dir / "student.gguf").string(), out = (dir / "tuned.gguf").string();
  {
    // Calibration from the start of the text; the evaluation below reads from far past it.
    std::ifstream in(text);
    std::string head(60000, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(dir / "calib.txt") << head;
    in.seekg(200000);
    std::string tail(60000, '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    tail.resize(static_cast<size_t>(in.gcount()));
    std::ofstream(dir / "unseen.txt") << tail;
  }
  const std::string calib = (dir / "calib.txt").string();
  ASSERT_EQ(RunCli("quantize -m " + model + " -o " + student + " --method aqlm:aqlm_2x8g8 --calib " + calib +
                   " --calib-seqs 8 --calib-len 128 -q").exit_code, 0);
  CliRun r = RunCli("finetune-aqlm -m " + student + " --teacher " + model + " -o " + out + " --calib " + calib +
                    " --calib-seqs 16 --calib-len 128 --epochs 3 --batch 4 --lr 1e-3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["train_sequences"], 14);
  EXPECT_EQ(j["val_sequences"], 2);
  EXPECT_EQ(j["steps"], 12);
  EXPECT_GT(j["best_epoch"].get<int>(), 0);
  EXPECT_LT(j["val_kl_after"].get<double>(), j["val_kl_before"].get<double>());
  auto kld = [&](const std::string& m) {
    const nlohmann::json e = nlohmann::json::parse(
        RunCli("eval -m " + m + " --reference " + model + " --text " + (dir / "unseen.txt").string() +
               " --ctx 128 --chunks 8 --json").out);
    return e["kld_mean"].get<double>();
  };
  const double before = kld(student), after = kld(out);
  std::printf("stories260K 2x8g8 KLD on unseen text: %.5f -> %.5f after finetune-aqlm\n", before, after);
  EXPECT_LT(after, before);

  // The cosine schedule with code steps: named in the JSON, codes changed, and it tunes too.
  const std::string cosine = (dir / "cosine.gguf").string();
  r = RunCli("finetune-aqlm -m " + student + " --teacher " + model + " -o " + cosine + " --calib " + calib +
             " --calib-seqs 16 --calib-len 128 --epochs 3 --batch 4 --lr 1e-3 --lr-schedule cosine"
             " --code-fraction 0.02 --code-step 0.02 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json jc = nlohmann::json::parse(r.out);
  EXPECT_EQ(jc["lr_schedule"], "cosine");
  EXPECT_EQ(jc["code_fraction"].get<double>(), 0.02);
  EXPECT_GT(jc["codes_changed"].get<int64_t>(), 0);
  EXPECT_EQ(j["codes_changed"].get<int64_t>(), 0);
  EXPECT_LT(jc["val_kl_after"].get<double>(), jc["val_kl_before"].get<double>());
  EXPECT_NE(jc["val_kl_after"].get<double>(), j["val_kl_after"].get<double>());

  const std::string bad = (dir / "bad.gguf").string();
  EXPECT_EQ(RunCli("finetune-aqlm -m " + model + " --teacher " + model + " -o " + bad + " --calib " + calib +
                   " --calib-seqs 4 -q").exit_code, 2);
  EXPECT_EQ(RunCli("finetune-aqlm -m " + student + " --teacher " + model + " -o " + bad + " --calib " + calib +
                   " --calib-seqs 4 --lr-schedule linear -q").exit_code, 2);
  // --calib-skip past the text's end, and with --calib self.
  EXPECT_EQ(RunCli("finetune-aqlm -m " + student + " --teacher " + model + " -o " + bad + " --calib " + calib +
                   " --calib-seqs 4 --calib-skip 100000000 -q").exit_code, 2);
  EXPECT_EQ(RunCli("finetune-aqlm -m " + student + " --teacher " + model + " -o " + bad +
                   " --calib self --calib-seqs 4 --calib-skip 10 -q").exit_code, 2);
  EXPECT_FALSE(fs::exists(bad));
}

TEST(CliSweep, WritesTableCsvJsonAndPlot) {
  const std::string model = SharedDataPath("stories260K/stories260K.bin");
  const std::string text = SharedDataPath("text/tinystories_valid_head.txt");
  LOWBIT_REQUIRE_FILE(model);
  const fs::path dir = TempDir("sweep");
  CliRun r = RunCli("sweep -m " + model + " -f " + text + " --ctx 128 --chunks 2 -o " +
                    dir.string() + " --formats 'q8_0;q4_0;bfp6/bfp6;mxfp4/mxint8' -q");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("| weight-only | gguf | W4 | q4_0 |"), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(
      lowbit::testing::ReadFileBytes((dir / "sweep.json").string()));
  ASSERT_EQ(j["points"].size(), 4u);
  for (const auto& p : j["points"]) {
    EXPECT_GT(p["kld"].get<double>(), 0.0);
    EXPECT_GT(p["top1_agreement"].get<double>(), 0.5);
    EXPECT_GT(p["ppl"].get<double>(), 1.0);
  }
  // q8_0 is closer to the reference than q4_0.
  double kld_q8 = 0, kld_q4 = 0;
  for (const auto& p : j["points"]) {
    if (p["weights"] == "q8_0") kld_q8 = p["kld"];
    if (p["weights"] == "q4_0" && p["acts"] == "f32") kld_q4 = p["kld"];
  }
  EXPECT_LT(kld_q8, kld_q4);
  EXPECT_TRUE(fs::exists(dir / "sweep.csv"));
  EXPECT_TRUE(fs::exists(dir / "sweep.md"));
  EXPECT_TRUE(fs::exists(dir / "sweep.svg"));
  EXPECT_FALSE(fs::exists(dir / "reference.lblogits"));  // the temporary reference is removed
  EXPECT_EQ(RunCli("sweep -m " + model + " -f " + text + " -o " + dir.string() +
                   " --formats q4_k").exit_code, 2);
}

}  // namespace
