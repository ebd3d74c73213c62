// The Hugging Face folder loader on real weights: stories260K written out as a transformers-style
// checkpoint (config.json + model.safetensors, q/k rows in HF order, i.e. un-permuted from the
// llama2.c/GGUF adjacent-pair order) must compute what the llama2.c file computes. This exercises
// the NeoX RoPE layout against the adjacent-pair one on the same trained model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"
#include "lowbit/model.h"
#include "lowbit/safetensors.h"
#include "test_support.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

std::vector<float> Rows(const WeightView& w) {
  std::vector<float> v(static_cast<size_t>(w.rows * w.cols));
  std::memcpy(v.data(), w.data, v.size() * 4);
  return v;
}

// GGUF/llama2.c store each head's rotated pairs adjacent (rows 2i, 2i+1); HF stores them half a
// head apart (rows i, i + hd/2). HF row h*hd + j holds adjacent row h*hd + (j < hd/2 ? 2j :
// 2(j-hd/2)+1).
std::vector<float> ToHfOrder(const WeightView& w, int64_t head_dim) {
  const std::vector<float> src = Rows(w);
  std::vector<float> dst(src.size());
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < w.rows; ++r) {
    const int64_t h = r / head_dim, j = r % head_dim;
    const int64_t from = h * head_dim + (j < half ? 2 * j : 2 * (j - half) + 1);
    std::memcpy(&dst[r * w.cols], &src[from * w.cols], w.cols * 4);
  }
  return dst;
}

// Writes `m` as an HF folder with every tensor stored in `dtype_spec` ("f32" or "bf16").
void WriteHfFolder(const LlamaModel& m, const std::string& dir, const std::string& dtype_spec) {
  fs::create_directories(dir);
  const LlamaConfig& c = m.config;
  std::ofstream(dir + "/config.json")
      << "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": "
      << c.dim << ", \"intermediate_size\": " << c.hidden_dim
      << ", \"num_hidden_layers\": " << c.n_layers << ", \"num_attention_heads\": " << c.n_heads
      << ", \"num_key_value_heads\": " << c.n_kv_heads << ", \"vocab_size\": " << c.vocab_size
      << ", \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
         "\"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}\n";
  Result<FormatPtr> format = ParseFormat(dtype_spec);
  ASSERT_TRUE(format.ok());
  SafetensorsWriter writer;
  auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape) {
    const int64_t cols = shape.back();
    const int64_t rows = static_cast<int64_t>(v.size()) / cols;
    std::vector<uint8_t> packed((*format)->PackedBytes(rows, cols));
    ASSERT_TRUE((*format)->Quantize(v.data(), rows, cols, packed.data()).ok());
    ASSERT_TRUE(writer.AddTensor(name, std::move(shape), **format, packed).ok()) << name;
  };
  auto matrix = [&](const std::string& name, const WeightView& w) {
    add(name, Rows(w), {w.rows, w.cols});
  };
  matrix("model.embed_tokens.weight", m.token_embedding);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = m.layers[l];
    const std::string b = "model.layers." + std::to_string(l) + ".";
    add(b + "input_layernorm.weight", w.attn_norm, {c.dim});
    add(b + "self_attn.q_proj.weight", ToHfOrder(w.wq, c.head_dim), {w.wq.rows, w.wq.cols});
    add(b + "self_attn.k_proj.weight", ToHfOrder(w.wk, c.head_dim), {w.wk.rows, w.wk.cols});
    matrix(b + "self_attn.v_proj.weight", w.wv);
    matrix(b + "self_attn.o_proj.weight", w.wo);
    add(b + "post_attention_layernorm.weight", w.ffn_norm, {c.dim});
    matrix(b + "mlp.gate_proj.weight", w.w_gate);
    matrix(b + "mlp.up_proj.weight", w.w_up);
    matrix(b + "mlp.down_proj.weight", w.w_down);
  }
  add("model.norm.weight", m.output_norm, {c.dim});
  ASSERT_TRUE(writer.WriteAtomic(dir + "/model.safetensors").ok());
}

// A copy of m with every matrix and vector rounded through `spec` (the weights the HF file holds).
LlamaModel Rounded(const LlamaModel& m, const std::string& spec) {
  const FormatPtr f = ParseFormat(spec).value();
  auto buffers = std::make_shared<std::vector<std::vector<float>>>();
  LlamaModel r = m;
  auto round = [&](std::vector<float> v) {
    std::vector<uint8_t> packed(f->PackedBytes(1, v.size()));
    EXPECT_TRUE(f->Quantize(v.data(), 1, v.size(), packed.data()).ok());
    f->Dequantize(packed.data(), 1, v.size(), v.data());
    return v;
  };
  auto matrix = [&](WeightView& w) {
    buffers->push_back(round(Rows(w)));
    w.data = reinterpret_cast<const uint8_t*>(buffers->back().data());
  };
  buffers->reserve(64);
  matrix(r.token_embedding);
  for (LayerWeights& l : r.layers) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) matrix(*w);
    l.attn_norm = round(l.attn_norm);
    l.ffn_norm = round(l.ffn_norm);
  }
  r.output_norm = round(r.output_norm);
  r.output = r.token_embedding;
  r.storage = std::shared_ptr<const void>(buffers, buffers.get());
  return r;
}

std::vector<float> Logits(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  SessionOptions so;
  so.max_tokens = static_cast<int64_t>(tokens.size());
  LlamaSession s(m, so);
  std::vector<float> logits;
  EXPECT_TRUE(s.Forward(tokens, 0, &logits).ok());
  return logits;
}

TEST(HfFolder, Stories260kInHfLayoutMatchesTheLlama2cFile) {
  const std::string bin = testing::SharedDataPath("stories260K/stories260K.bin");
  LOWBIT_REQUIRE_FILE(bin);
  Result<LlamaModel> m = LoadLlama2c(bin);
  ASSERT_TRUE(m.ok());
  // Greedy story tokens from the README (BOS first), 60 positions.
  std::vector<int32_t> tokens = {1};
  {
    SessionOptions so;
    so.max_tokens = 60;
    LlamaSession s(*m, so);
    std::vector<float> logits;
    Sampler greedy(SamplerOptions{.temperature = 0.0f});
    while (tokens.size() < 60) {
      ASSERT_TRUE(s.Forward(std::span(tokens).last(1), 0, &logits).ok());
      tokens.push_back(greedy.Sample(logits));
    }
  }
  for (const std::string dtype : {"f32", "bf16"}) {
    const std::string dir =
        (fs::temp_directory_path() / ("lowbit_hf_" + std::to_string(::getpid()) + "_" + dtype))
            .string();
    WriteHfFolder(*m, dir, dtype);
    Result<LlamaModel> hf = LoadModel(dir);
    ASSERT_TRUE(hf.ok()) << hf.status().ToString();
    EXPECT_EQ(hf->config.rope_layout, RopeLayout::kNeox);
    EXPECT_TRUE(hf->config.tied_embeddings);
    EXPECT_EQ(hf->source_kind, "hf");
    EXPECT_EQ(hf->FormatSummary(), dtype + " x36");
    const LlamaModel reference = dtype == "f32" ? *m : Rounded(*m, dtype);
    const std::vector<float> want = Logits(reference, tokens);
    const std::vector<float> got = Logits(*hf, tokens);
    // Same weights; only the order of the q.k sums inside a head differs (rotated pairs are
    // stored in another order), so logits agree to f32 rounding, far below what a wrong pairing
    // would do (that changes logits by O(1)).
    double max_diff = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
      max_abs = std::max(max_abs, std::abs(double(want[i])));
    }
    EXPECT_LT(max_diff, 1e-5 * max_abs) << dtype << ": max |diff| " << max_diff;
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace lowbit
