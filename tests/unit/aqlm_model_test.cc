// AQLM model driver (include/lowbit/aqlm.h) on stories260K: checkpoint/resume reproduces an
// uninterrupted run byte for byte, and calibrated training beats the calibration-free encoder of
// the same format on held-out text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lowbit/aqlm.h"
#include "lowbit/eval.h"
#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"
#include "model_test_util.h"
#include "runtime/linear.h"
#include "test_support.h"

namespace lowbit {
namespace {

std::vector<const WeightView*> Linears(const LlamaModel& m) {
  std::vector<const WeightView*> v;
  for (const auto& l : m.layers)
    for (const WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      v.push_back(w);
  return v;
}

// A calibration text is cut into consecutive windows after the skipped head, BOS first, never
// past the end; a skip that leaves less than one window is an error, not an empty set.
TEST(AqlmModel, CalibrationTextWindowsStartAfterTheSkippedTokens) {
  std::vector<int32_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = 1000 + i;
  auto cut = CutCalibrationText(ids, 7, 4, 11, 25);
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  ASSERT_EQ(cut->size(), 4u);
  for (size_t s = 0; s < cut->size(); ++s) {
    const auto& seq = (*cut)[s];
    ASSERT_EQ(seq.size(), 11u);
    EXPECT_EQ(seq[0], 7);
    for (size_t j = 1; j < seq.size(); ++j) EXPECT_EQ(seq[j], 1000 + 25 + int(s) * 10 + int(j) - 1);
  }
  // 75 tokens after the skip hold 7 windows of 10: asking for 20 gives 7, the last ending at 94.
  cut = CutCalibrationText(ids, 7, 20, 11, 25);
  ASSERT_TRUE(cut.ok());
  ASSERT_EQ(cut->size(), 7u);
  EXPECT_EQ(cut->back().back(), 1094);
  // Exactly one window left; then one token short of it; then bad arguments.
  cut = CutCalibrationText(ids, 7, 3, 11, 90);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->size(), 1u);
  EXPECT_FALSE(CutCalibrationText(ids, 7, 3, 11, 91).ok());
  EXPECT_FALSE(CutCalibrationText(ids, 7, 3, 11, 1000).ok());
  EXPECT_FALSE(CutCalibrationText(ids, 7, 3, 11, -1).ok());
  EXPECT_FALSE(CutCalibrationText(ids, 7, 0, 11, 0).ok());
  EXPECT_FALSE(CutCalibrationText(ids, 7, 3, 1, 0).ok());
}

// --calib self reports each sampled sequence (the CLI prints about 16 of these lines), in order,
// with the total, and the sequences start with BOS and have the asked length.
TEST(AqlmModel, SelfCalibrationReportsProgress) {
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(path);
  auto loaded = LoadModelWithTokenizer(path);
  ASSERT_TRUE(loaded.ok());
  AqlmOptions o;
  o.n_sequences = 3;
  o.seq_len = 9;
  o.bos = std::max(0, loaded->tokenizer->bos());
  std::vector<int64_t> done;
  auto calib = SampleCalibration(loaded->model, o, [&](const AqlmProgress& p) {
    EXPECT_EQ(p.calibration_total, 3);
    EXPECT_GE(p.eta_seconds, 0.0);
    done.push_back(p.calibration_done);
  });
  ASSERT_TRUE(calib.ok()) << calib.status().message();
  EXPECT_EQ(done, (std::vector<int64_t>{1, 2, 3}));
  ASSERT_EQ(calib->size(), 3u);
  for (const auto& seq : *calib) {
    ASSERT_EQ(seq.size(), 9u);
    EXPECT_EQ(seq[0], o.bos);
  }
}

TEST(AqlmModel, CheckpointResumeGivesTheSameBytes) {
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(path);
  auto loaded = LoadModelWithTokenizer(path);
  ASSERT_TRUE(loaded.ok());
  AqlmOptions o;
  o.scheme = "aqlm_2x8g8";
  o.calibration = testing::TokenSequences(*loaded->tokenizer, testing::ReadStoriesText(), 0, 4, 64);
  ASSERT_EQ(o.calibration.size(), 4u);
  o.max_iterations = 2;
  auto full = QuantizeModelAqlm(loaded->model, o);
  ASSERT_TRUE(full.ok()) << full.status().message();

  const std::string dir = ::testing::TempDir() + "/aqlm_ckpt_test";
  std::filesystem::remove_all(dir);
  o.checkpoint_dir = dir;
  o.stop_after_layer = 1;  // "killed" after block 1 was checkpointed
  auto stopped = QuantizeModelAqlm(loaded->model, o);
  ASSERT_FALSE(stopped.ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/aqlm_layer_1.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/aqlm_layer_2.bin"));
  o.stop_after_layer = -1;
  int resumed_blocks = 0, trained = 0;
  auto resumed = QuantizeModelAqlm(loaded->model, o, [&](const AqlmProgress& p) {
    if (p.from_checkpoint) {
      ++resumed_blocks;
    } else {
      ++trained;
      EXPECT_GT(p.relative_loss, 0.0);
      EXPECT_LT(p.relative_loss, 1.0) << p.tensor;
    }
  });
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_EQ(resumed_blocks, 2);
  EXPECT_EQ(trained, 7 * 3);
  const auto a = Linears(*full), b = Linears(*resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]->format_name(), "aqlm_2x8g8");
    ASSERT_EQ(a[i]->n_bytes(), b[i]->n_bytes());
    EXPECT_EQ(std::memcmp(a[i]->data, b[i]->data, static_cast<size_t>(a[i]->n_bytes())), 0)
        << a[i]->name;
  }
  std::filesystem::remove_all(dir);
}

double MeanKld(const LlamaModel& ref, const LlamaModel& q, const std::vector<int32_t>& tokens) {
  return testing::MeanKldVs(ref, q, tokens, /*ctx=*/128);
}

TEST(AqlmModel, CalibratedTrainingBeatsTheCalibrationFreeEncoder) {
  const std::string path = testing::SharedDataPath("stories260K/stories260K.gguf");
  LOWBIT_REQUIRE_FILE(path);
  auto loaded = LoadModelWithTokenizer(path);
  ASSERT_TRUE(loaded.ok());
  const std::string text = testing::ReadStoriesText();
  AqlmOptions o;
  o.scheme = "aqlm_2x8g8";
  o.calibration = testing::TokenSequences(*loaded->tokenizer, text, 0, 8, 128);
  auto trained = QuantizeModelAqlm(loaded->model, o);
  ASSERT_TRUE(trained.ok()) << trained.status().message();
  // The same format, calibration-free, on the same matrices.
  LlamaModel free = loaded->model;
  auto f = ParseFormat("aqlm_2x8g8");
  ASSERT_TRUE(f.ok());
  std::vector<std::vector<uint8_t>> buffers;
  buffers.reserve(64);
  for (auto& l : free.layers) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      std::vector<float> x(static_cast<size_t>(w->rows * w->cols));
      for (int64_t r = 0; r < w->rows; ++r) ReadRow(*w, r, &x[static_cast<size_t>(r * w->cols)]);
      buffers.emplace_back(static_cast<size_t>((*f)->PackedBytes(w->rows, w->cols)));
      ASSERT_TRUE((*f)->Quantize(x.data(), w->rows, w->cols, buffers.back().data()).ok());
      w->format = *f;
      w->data = buffers.back().data();
      w->kernel_plan.reset();
    }
  }
  // Held-out text: far past the calibration part.
  std::vector<int32_t> eval = loaded->tokenizer->Encode(text.substr(200000, 60000), true);
  eval.resize(std::min<size_t>(eval.size(), 128 * 8));
  const double kld_trained = MeanKld(loaded->model, *trained, eval);
  const double kld_free = MeanKld(loaded->model, free, eval);
  std::printf("stories260K 2x8g8 mean KLD: calibrated %.5f, calibration-free %.5f\n", kld_trained,
              kld_free);
  EXPECT_LT(kld_trained, kld_free);
}

}  // namespace
}  // namespace lowbit
