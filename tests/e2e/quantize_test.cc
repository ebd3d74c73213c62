// `lowbit quantize`: llama.cpp-typed output files, the same logits as quantizing in memory,
// activation formats carried in the file, and atomic output under SIGKILL.
#include "lowbit/quantize.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "model_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

std::string SmolLm2Path() {
  return std::string(LOWBIT_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}
std::string Stories260kGguf() { return testing::SharedDataPath("stories260K/stories260K.gguf"); }

fs::path TempDir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("lowbit_quantize_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

QuantizeOptions Weights(const std::string& spec) {
  QuantizeOptions o;
  o.rules.default_format = *ParseFormat(spec);
  return o;
}

std::vector<float> Logits(const LlamaModel& model, const std::vector<int32_t>& ids) {
  return lowbit::testing::ForwardLogits(model, ids);
}

std::vector<int32_t> SomeIds(int32_t vocab, size_t n) {
  std::vector<int32_t> ids;
  std::mt19937 rng(7);
  for (size_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>(rng() % vocab));
  return ids;
}

TEST(Quantize, Stories260kQ4_0FallsBackToF16ForPartialBlockRows) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  const fs::path dir = TempDir("s260");
  Result<QuantizeReport> r =
      QuantizeGgufFile(Stories260kGguf(), (dir / "q4_0.gguf").string(), Weights("q4_0"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->llama_cpp_compatible);
  Result<GgufFile> f = GgufFile::Open((dir / "q4_0.gguf").string());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  int fallbacks = 0;
  for (const GgufTensor& t : f->tensors()) {
    EXPECT_NE(t.ggml_type, kLowbitGgufType) << t.name;
    if (t.dims.size() < 2) {
      EXPECT_EQ(t.ggml_type, 0u) << t.name;  // 1-D norms stay F32
    } else if (t.cols % 32 != 0) {
      EXPECT_EQ(t.ggml_type, 1u) << t.name;  // F16: ffn_down rows are 172 long
      ++fallbacks;
    } else {
      EXPECT_EQ(t.ggml_type, 2u) << t.name;  // Q4_0
    }
  }
  EXPECT_EQ(fallbacks, 5);  // one ffn_down per layer
  // No lowbit tensor types; only provenance keys (lowbit.quantize.*), which llama.cpp ignores.
  for (const GgufKeyValue& kv : f->metadata()) {
    EXPECT_NE(kv.key.rfind(kLowbitTensorFormatKeyPrefix, 0), 0u) << kv.key;
  }

  // A lowbit format pads such rows instead and is counted in bits per weight.
  Result<QuantizeReport> b =
      QuantizeGgufFile(Stories260kGguf(), (dir / "bfp6.gguf").string(), Weights("bfp6"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_FALSE(b->llama_cpp_compatible);
  // Linears per layer, in blocks of 16 (bfp6: 13 bytes each): wq and wo 64x64, wk and wv 32x64
  // (4 kv heads of 8), w_gate and w_up 172x64 (4 blocks per row), w_down 64x172 (11 blocks: 176
  // padded columns per row).
  const int64_t blocks = 5 * ((64 + 32 + 32 + 64) * 4 + 2 * 172 * 4 + 64 * 11);
  EXPECT_EQ(b->linear_bytes, blocks * 13);
  EXPECT_DOUBLE_EQ(b->linear_bits_per_weight(),
                   8.0 * blocks * 13 / (5.0 * ((64 + 32 + 32 + 64) * 64 + 3 * 172 * 64)));
}

TEST(Quantize, FailureLeavesNoOutput) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  const fs::path dir = TempDir("fail");
  Result<QuantizeReport> r =
      QuantizeGgufFile(Stories260kGguf(), (dir / "out.gguf").string(), Weights("q4_k"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(Quantize, ActivationFormatsTravelInTheFile) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  const fs::path dir = TempDir("acts");
  QuantizeOptions o = Weights("bfp6");
  o.activations.linear_inputs = *ParseFormat("bfp6");
  o.activations.attention = *ParseFormat("mxfp8_e4m3");
  o.activations.kv_cache = *ParseFormat("q8_0");
  const std::string out = (dir / "w6a6.gguf").string();
  ASSERT_TRUE(QuantizeGgufFile(Stories260kGguf(), out, o).ok());
  Result<LlamaModel> file_model = LoadModel(out);
  ASSERT_TRUE(file_model.ok()) << file_model.status().ToString();
  ASSERT_NE(file_model->activations.linear_inputs, nullptr);
  EXPECT_EQ(file_model->activations.linear_inputs->spec(), "bfp:w=6,block=16,exp=ceil");
  EXPECT_EQ(file_model->activations.attention->spec(), o.activations.attention->spec());
  EXPECT_EQ(file_model->activations.kv_cache->spec(), "gguf:type=q8_0");

  // The same thing in memory gives bit-identical logits, and activation quantization does change
  // them (so the formats are really applied).
  Result<LlamaModel> source = LoadModel(Stories260kGguf());
  ASSERT_TRUE(source.ok());
  Result<LlamaModel> memory = QuantizeModelWeights(*source, o.rules.default_format);
  ASSERT_TRUE(memory.ok());
  memory->activations = o.activations;
  const std::vector<int32_t> ids = SomeIds(512, 40);
  const std::vector<float> from_file = Logits(*file_model, ids);
  EXPECT_EQ(from_file, Logits(*memory, ids));
  memory->activations = ActivationQuantOptions{};
  EXPECT_NE(from_file, Logits(*memory, ids));
}

// Activation quantization: an exact format (f32) changes nothing; a real one keeps prefill ==
// token-by-token decode and 1 == 2 threads, bit for bit, because every row is quantized alone.
TEST(Quantize, ActivationQuantizationIsPerRowAndDeterministic) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  Result<LlamaModel> m = LoadModel(Stories260kGguf());
  ASSERT_TRUE(m.ok());
  const std::vector<int32_t> ids = SomeIds(512, 12);
  const std::vector<float> plain = Logits(*m, ids);
  m->activations.linear_inputs = *ParseFormat("f32");
  m->activations.attention = *ParseFormat("f32");
  EXPECT_EQ(Logits(*m, ids), plain);
  m->activations.linear_inputs = *ParseFormat("mxfp4");
  m->activations.attention = *ParseFormat("bfp6");
  m->activations.kv_cache = *ParseFormat("q8_0");
  const std::vector<float> prefill = Logits(*m, ids);
  EXPECT_NE(prefill, plain);
  for (int threads : {1, 2}) {
    SessionOptions options;
    options.max_tokens = 12;
    options.n_threads = threads;
    LlamaSession session(*m, options);
    std::vector<float> step, all;
    for (int32_t id : ids) {
      ASSERT_TRUE(session.Forward(std::span<const int32_t>(&id, 1), 0, &step).ok());
      all.insert(all.end(), step.begin(), step.end());
    }
    EXPECT_EQ(all, prefill) << threads << " threads";
  }
}

// Both llama.cpp-typed SmolLM2 files re-read with the logits of quantizing in memory.
TEST(Quantize, SmolLm2Q4_0AndMxfp4UseLlamaCppTypesAndMatchInMemory) {
  LOWBIT_REQUIRE_FILE(SmolLm2Path());
  const fs::path dir = TempDir("smol");
  Result<LlamaModel> source = LoadModel(SmolLm2Path());
  ASSERT_TRUE(source.ok());
  const std::vector<int32_t> ids = SomeIds(49152, 24);
  struct Case {
    const char* spec;
    uint32_t ggml_type;  // what every matrix must be stored as
  };
  for (const Case& c : {Case{"q4_0", 2}, Case{"mxfp4", 39}}) {
    const std::string out = (dir / (std::string(c.spec) + ".gguf")).string();
    Result<QuantizeReport> r = QuantizeGgufFile(SmolLm2Path(), out, Weights(c.spec));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->llama_cpp_compatible) << c.spec;
    Result<GgufFile> f = GgufFile::Open(out);
    ASSERT_TRUE(f.ok());
    for (const GgufTensor& t : f->tensors()) {
      EXPECT_EQ(t.ggml_type, t.dims.size() >= 2 ? c.ggml_type : 0u) << c.spec << " " << t.name;
    }
    Result<LlamaModel> file_model = LoadModel(out);
    ASSERT_TRUE(file_model.ok());
    Result<LlamaModel> memory = QuantizeModelWeights(*source, *ParseFormat(c.spec));
    ASSERT_TRUE(memory.ok());
    const std::vector<float> a = Logits(*file_model, ids);
    const std::vector<float> b = Logits(*memory, ids);
    ASSERT_EQ(a.size(), b.size());
    // Same values in both. q4_0 is the same format and kernel: bit-identical. The mxfp4 file holds
    // ggml's MXFP4 layout of the same numbers, multiplied by another kernel (summation order).
    double max_diff = 0.0;
    for (size_t i = 0; i < a.size(); ++i)
      max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    if (std::string(c.spec) == "q4_0") {
      EXPECT_EQ(max_diff, 0.0);
    } else {
      EXPECT_LT(max_diff, 2e-3) << "logits are O(10); f32 summation-order noise only";
    }
  }
}

// Determinism: the same input gives byte-identical files with 1 and 2 threads, and the model read
// back gives bit-identical logits with 1 and 2 threads.
TEST(Quantize, FilesAndLogitsAreIdenticalForOneAndTwoThreads) {
  LOWBIT_REQUIRE_FILE(SmolLm2Path());
  const fs::path dir = TempDir("threads");
  for (const char* spec : {"q4_0", "bfp6"}) {
    std::vector<std::vector<uint8_t>> files;
    for (int threads : {1, 2}) {
      QuantizeOptions o = Weights(spec);
      o.n_threads = threads;
      const std::string out =
          (dir / (std::string(spec) + "_t" + std::to_string(threads) + ".gguf")).string();
      ASSERT_TRUE(QuantizeGgufFile(SmolLm2Path(), out, o).ok()) << spec;
      files.push_back(testing::ReadFileBytes(out));
    }
    EXPECT_EQ(files[0], files[1]) << spec;
  }
  Result<LlamaModel> model = LoadModel((dir / "bfp6_t1.gguf").string());
  ASSERT_TRUE(model.ok());
  const std::vector<int32_t> ids = SomeIds(49152, 16);
  std::vector<std::vector<float>> logits;
  for (int threads : {1, 2}) {
    SessionOptions options;
    options.max_tokens = 16;
    options.n_threads = threads;
    LlamaSession session(*model, options);
    std::vector<float> out;
    ASSERT_TRUE(session.Forward(ids, 0, &out).ok());
    logits.push_back(out);
  }
  EXPECT_EQ(logits[0], logits[1]);
}

// SIGKILL at random moments while `lowbit quantize` overwrites an existing output: afterwards the
// folder holds the complete previous file or the complete new one, never anything partial.
TEST(Quantize, SigkillNeverLeavesAPartialFile) {
  LOWBIT_REQUIRE_FILE(SmolLm2Path());
  const fs::path dir = TempDir("kill");
  const std::string out = (dir / "model.gguf").string();
  // The previous complete file, and (once) the complete new one for comparison.
  ASSERT_TRUE(QuantizeGgufFile(Stories260kGguf(), out, Weights("q8_0")).ok());
  const std::vector<uint8_t> previous = testing::ReadFileBytes(out);
  const std::string fresh = (dir / "fresh.gguf").string();
  ASSERT_TRUE(QuantizeGgufFile(SmolLm2Path(), fresh, Weights("q4_0")).ok());
  const std::vector<uint8_t> complete = testing::ReadFileBytes(fresh);
  fs::remove(fresh);
  // The run time the kills are spread over: the faster of two uninterrupted CLI runs (the first
  // run of a test binary can be slowed by a cold page cache or a neighbouring ctest job, and a
  // too-long estimate would put the kills after the end).
  double full_s = 1e9;
  for (int run = 0; run < 2; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    const testing::CliRun r =
        testing::RunCli("quantize -m " + SmolLm2Path() + " -o " + fresh + " -w q4_0 -q");
    ASSERT_EQ(r.exit_code, 0);
    full_s = std::min(full_s,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    fs::remove(fresh);
  }

  std::mt19937 rng(20261123);
  int killed_running = 0;
  // 8 kills that land while the process runs, in at most 16 attempts. An attempt whose process
  // finishes before its kill time still checks the files, and its run time lowers the estimate:
  // the two runs above may have shared the CPU with a neighbouring ctest job that is gone now.
  for (int attempt = 0, trial = 0; trial < 8 && attempt < 16; ++attempt) {
    // Half the kills anywhere in the run, half around its end, where the file is written.
    std::uniform_real_distribution<double> anywhere(0.0, full_s), late(0.7 * full_s, 1.1 * full_s);
    const double delay = trial % 2 == 0 ? anywhere(rng) : late(rng);
    const auto t_fork = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::FILE* null_out = std::freopen("/dev/null", "w", stdout);  // keep the test log clean
      (void)null_out;
      const std::string model = SmolLm2Path();
      ::execl(LOWBIT_CLI, LOWBIT_CLI, "quantize", "-m", model.c_str(), "-o", out.c_str(), "-w",
              "q4_0", "-q", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait for the kill time, noticing an earlier exit.
    int status = 0;
    bool exited = false;
    const auto kill_at = t_fork + std::chrono::duration<double>(delay);
    while (std::chrono::steady_clock::now() < kill_at) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (exited) {
      full_s = std::min(
          full_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t_fork).count());
    } else {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    if (WIFSIGNALED(status)) {
      ++killed_running;
      ++trial;
    }
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      const std::vector<uint8_t> bytes = testing::ReadFileBytes(e.path().string());
      const bool is_previous = bytes == previous, is_complete = bytes == complete;
      EXPECT_TRUE(is_previous || is_complete)
          << "attempt " << attempt << " (kill after " << delay << " s): " << e.path() << " has "
          << bytes.size() << " bytes, neither the previous nor the complete file";
      if (e.path().string() != out) {
        EXPECT_TRUE(is_complete) << "leftover temporary file " << e.path();
      }
    }
    ASSERT_TRUE(fs::exists(out));  // the previous (or new) file is never removed
    // Reset for the next trial.
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) fs::remove(e.path());
    std::FILE* f = std::fopen(out.c_str(), "wb");
    std::fwrite(previous.data(), 1, previous.size(), f);
    std::fclose(f);
  }
  EXPECT_GE(killed_running, 4) << "most kills should land while the process runs";
}

}  // namespace
}  // namespace lowbit
