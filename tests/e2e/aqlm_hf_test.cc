// `lowbit export-hf-aqlm` and the HF AQLM folder loader on stories260K (and the SmolLM2 tokenizer):
// the folder holds the Hugging Face AQLM tensors (names, dtypes, shapes, wrapped codes), config.json
// carries quantization_config, and reading the folder back gives the very same packed bytes and
// bit-identical logits. docs/aqlm_hf.md.
//
// What "identical" is compared against: the folder stores embeddings, norms and lm_head as float16
// (the HF AQLM convention) and q/k rows in HF order with NeoX RoPE, so the expected model is built
// here by hand from the quantized GGUF model: the same AQLM bytes with q/k rows moved to HF order,
// every non-AQLM matrix and vector rounded to float16, NeoX layout. The loaded folder must equal it
// bit for bit. The same float16-rounded model in the GGUF layout (adjacent RoPE pairs, rows not
// moved) must agree to f32 rounding (only the q.k summation order differs), which checks the row
// permutation against the RoPE convention rather than against itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "formats/additive.h"
#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/model.h"
#include "lowbit/safetensors.h"
#include "lowbit/tokenizer.h"
#include "quant/aqlm/export_hf.h"
#include "runtime/linear.h"
#include "model_test_util.h"
#include "test_support.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

std::string Stories260kGguf() { return testing::SharedDataPath("stories260K/stories260K.gguf"); }
std::string SmolLm2Path() {
  return std::string(LOWBIT_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("lowbit_aqlm_hf_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

using lowbit::testing::CliRun;

// Runs a shell command; stdout and stderr are captured together.
CliRun RunShell(const std::string& command) { return lowbit::testing::RunShell(command + " 2>&1"); }
CliRun RunCli(const std::string& args) { return lowbit::testing::RunCli(args, /*merge_stderr=*/true); }

std::vector<float> Logits(const LlamaModel& model, const std::vector<int32_t>& ids) {
  return lowbit::testing::ForwardLogits(model, ids);
}

std::vector<int32_t> SomeIds(int32_t vocab, size_t n) {
  std::vector<int32_t> ids = {1};
  std::mt19937 rng(11);
  while (ids.size() < n) ids.push_back(static_cast<int32_t>(rng() % vocab));
  return ids;
}

// The seven linears of layer l in HF order, with their HF names.
std::vector<std::pair<std::string, WeightView*>> Linears(LayerWeights& w, size_t l) {
  const std::string b = "model.layers." + std::to_string(l) + ".";
  return {{b + "self_attn.q_proj", &w.wq}, {b + "self_attn.k_proj", &w.wk},
          {b + "self_attn.v_proj", &w.wv}, {b + "self_attn.o_proj", &w.wo},
          {b + "mlp.gate_proj", &w.w_gate}, {b + "mlp.up_proj", &w.w_up},
          {b + "mlp.down_proj", &w.w_down}};
}

// The matrices of stories260K's blocks in `spec`, calibration-free; embeddings and lm_head kept.
LlamaModel QuantizeLinears(const LlamaModel& m, const std::string& spec) {
  const FormatPtr f = ParseFormat(spec).value();
  Result<LlamaModel> q = QuantizeModelWeights(
      m, [&](const WeightView&, const std::string& name) -> FormatPtr {
        return name.rfind("blk.", 0) == 0 ? f : nullptr;
      });
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  return std::move(q).value();
}

// HF row r of a q/k projection: GGUF "llama" keeps rotated pairs adjacent (rows 2i, 2i+1 of a
// head); HF keeps them half a head apart (rows i and i + hd/2).
int64_t GgufRowOf(int64_t r, int64_t hd) {
  const int64_t h = r / hd, i = r % hd;
  return h * hd + (i < hd / 2 ? 2 * i : 2 * (i - hd / 2) + 1);
}

// Builds the expected model (see the file comment). hf_layout: q/k rows in HF order + NeoX RoPE;
// otherwise the GGUF layout. g: AQLM group size (a linear whose width it does not divide is
// expected as float16).
class Expected {
 public:
  Expected(const LlamaModel& q, bool hf_layout, int g)
      : f16_(FormatForSafetensorsDtype(SafetensorsDtype::kF16)),
        buffers_(std::make_shared<std::deque<std::vector<uint8_t>>>()) {
    model = q;
    const int64_t hd = q.config.head_dim;
    ToF16(model.token_embedding, false, hd);
    for (size_t l = 0; l < model.layers.size(); ++l) {
      LayerWeights& w = model.layers[l];
      w.attn_norm = Round(w.attn_norm);
      w.ffn_norm = Round(w.ffn_norm);
      for (auto& [name, view] : Linears(w, l)) {
        const bool rotary = hf_layout && (view == &w.wq || view == &w.wk);
        if (view->format != nullptr && view->format->family() == "aqlm" && view->cols % g == 0) {
          if (rotary) MoveAqlmRows(*view, hd);
        } else {
          ToF16(*view, rotary, hd);
        }
      }
    }
    model.output_norm = Round(model.output_norm);
    if (q.config.tied_embeddings) {
      model.output = model.token_embedding;
    } else {
      ToF16(model.output, false, hd);
    }
    if (hf_layout) model.config.rope_layout = RopeLayout::kNeox;
    model.storage = std::shared_ptr<const void>(
        std::make_shared<std::pair<std::shared_ptr<const void>, decltype(buffers_)>>(q.storage,
                                                                                     buffers_));
    PrepareModelForIsa(model, kernels::ActiveIsa());
  }

  LlamaModel model;

 private:
  std::vector<float> Round(std::vector<float> v) const {
    std::vector<uint8_t> bytes(f16_->PackedBytes(1, v.size()));
    EXPECT_TRUE(f16_->Quantize(v.data(), 1, v.size(), bytes.data()).ok());
    f16_->Dequantize(bytes.data(), 1, v.size(), v.data());
    return v;
  }
  void ToF16(WeightView& w, bool rotary, int64_t hd) {
    std::vector<float> row(w.cols);
    std::vector<uint8_t>& bytes = buffers_->emplace_back(f16_->PackedBytes(w.rows, w.cols));
    const int64_t row_bytes = f16_->PackedBytes(1, w.cols);
    for (int64_t r = 0; r < w.rows; ++r) {
      ReadRow(w, rotary ? GgufRowOf(r, hd) : r, row.data());
      ASSERT_TRUE(f16_->Quantize(row.data(), 1, w.cols, &bytes[r * row_bytes]).ok());
    }
    w.format = f16_;
    w.data = bytes.data();
  }
  // AQLM rows are independent (shared codebooks in the header), so HF order moves whole rows.
  void MoveAqlmRows(WeightView& w, int64_t hd) {
    const int64_t header = w.format->HeaderBytes(w.rows, w.cols);
    const int64_t row_bytes = w.format->RowBytes(w.cols);
    std::vector<uint8_t>& bytes = buffers_->emplace_back(w.data, w.data + w.n_bytes());
    for (int64_t r = 0; r < w.rows; ++r) {
      std::memcpy(&bytes[header + r * row_bytes], w.data + header + GgufRowOf(r, hd) * row_bytes,
                  row_bytes);
    }
    w.data = bytes.data();
  }

  FormatPtr f16_;
  std::shared_ptr<std::deque<std::vector<uint8_t>>> buffers_;
};

// Every matrix of `got` (the loaded folder) has the format and the bytes of `want`.
void ExpectSameMatrices(LlamaModel& got, LlamaModel& want) {
  std::vector<std::pair<std::string, std::pair<WeightView*, WeightView*>>> pairs = {
      {"embed", {&got.token_embedding, &want.token_embedding}},
      {"lm_head", {&got.output, &want.output}}};
  for (size_t l = 0; l < got.layers.size(); ++l) {
    auto a = Linears(got.layers[l], l), b = Linears(want.layers[l], l);
    for (size_t i = 0; i < a.size(); ++i) pairs.push_back({a[i].first, {a[i].second, b[i].second}});
  }
  for (const auto& [name, p] : pairs) {
    ASSERT_EQ(p.first->format_name(), p.second->format_name()) << name;
    ASSERT_EQ(p.first->n_bytes(), p.second->n_bytes()) << name;
    EXPECT_EQ(std::memcmp(p.first->data, p.second->data, p.first->n_bytes()), 0) << name;
  }
  for (size_t l = 0; l < got.layers.size(); ++l) {
    EXPECT_EQ(got.layers[l].attn_norm, want.layers[l].attn_norm) << l;
    EXPECT_EQ(got.layers[l].ffn_norm, want.layers[l].ffn_norm) << l;
  }
  EXPECT_EQ(got.output_norm, want.output_norm);
}

// Exports q, reads the folder back and checks bytes and logits (file comment).
void ExpectRoundTrip(const LlamaModel& q, const fs::path& out, int g) {
  ExportHfAqlmOptions o;
  o.skip_tokenizer = true;
  ASSERT_TRUE(ExportHfAqlm(q, nullptr, out.string(), o).ok());
  Result<LlamaModel> loaded = LoadModel(out.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->source_kind, "hf");
  EXPECT_EQ(loaded->config.rope_layout, RopeLayout::kNeox);
  Expected hf(q, true, g);
  ExpectSameMatrices(*loaded, hf.model);
  const std::vector<int32_t> ids = SomeIds(512, 48);
  const std::vector<float> got = Logits(*loaded, ids);
  EXPECT_EQ(got, Logits(hf.model, ids));  // bit-identical

  Expected gguf_layout(q, false, g);
  const std::vector<float> want = Logits(gguf_layout.model, ids);
  ASSERT_EQ(want.size(), got.size());
  double max_diff = 0.0, max_abs = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
    max_abs = std::max(max_abs, std::abs(double(want[i])));
  }
  EXPECT_LT(max_diff, 1e-5 * max_abs) << "max |diff| " << max_diff;
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

void ExpectTensor(const SafetensorsFile& f, const std::string& name, SafetensorsDtype dtype,
                  std::vector<int64_t> shape) {
  const SafetensorsTensor* t = f.FindTensor(name);
  ASSERT_NE(t, nullptr) << name;
  EXPECT_EQ(t->dtype, dtype) << name;
  EXPECT_EQ(t->shape, shape) << name;
}

TEST(AqlmHf, Stories260k2x8RoundTripsBitIdentical) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  Result<LlamaModel> m = LoadModel(Stories260kGguf());
  ASSERT_TRUE(m.ok());
  ASSERT_FALSE(m->config.tied_embeddings);  // lm_head is exported too
  // g = 4 divides every width (64 and stories260K's 172), so all 35 linears are AQLM.
  const LlamaModel q = QuantizeLinears(*m, "aqlm:m=2,b=8,g=4");
  const fs::path dir = TempDir("2x8");
  const fs::path out = dir / "hf";
  ExpectRoundTrip(q, out, 4);

  // (b) the HF names, dtypes and shapes: [out, in/g, M] codes, [M, 2^B, 1, g] codebooks,
  // [out, 1, 1, 1] scales; float16 for the rest; no .weight for an AQLM linear.
  Result<SafetensorsFile> f = SafetensorsFile::Open((out / "model.safetensors").string());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->tensors().size(), 1u + 5 * (2 + 7 * 3) + 1 + 1);
  using D = SafetensorsDtype;
  ExpectTensor(*f, "model.embed_tokens.weight", D::kF16, {512, 64});
  ExpectTensor(*f, "lm_head.weight", D::kF16, {512, 64});
  ExpectTensor(*f, "model.norm.weight", D::kF16, {64});
  ExpectTensor(*f, "model.layers.0.input_layernorm.weight", D::kF16, {64});
  ExpectTensor(*f, "model.layers.4.post_attention_layernorm.weight", D::kF16, {64});
  ExpectTensor(*f, "model.layers.0.self_attn.q_proj.codes", D::kI8, {64, 16, 2});
  ExpectTensor(*f, "model.layers.0.self_attn.q_proj.codebooks", D::kF16, {2, 256, 1, 4});
  ExpectTensor(*f, "model.layers.0.self_attn.q_proj.scales", D::kF16, {64, 1, 1, 1});
  ExpectTensor(*f, "model.layers.2.self_attn.k_proj.codes", D::kI8, {32, 16, 2});
  ExpectTensor(*f, "model.layers.3.mlp.down_proj.codes", D::kI8, {64, 43, 2});
  ExpectTensor(*f, "model.layers.3.mlp.gate_proj.codes", D::kI8, {172, 16, 2});
  EXPECT_EQ(f->FindTensor("model.layers.0.self_attn.q_proj.weight"), nullptr);

  // Codes are the int8 two's-complement patterns of the codes (v_proj: rows not moved): code k of
  // (row r, group j, codebook c) is stored as k - 256 when k >= 128.
  const WeightView& v = q.layers[1].wv;
  const auto& aqlm = static_cast<const AqlmFormat&>(*v.format);
  const AqlmTensor t = aqlm.Unpack(v.data, v.rows, v.cols);
  const SafetensorsTensor* codes = f->FindTensor("model.layers.1.self_attn.v_proj.codes");
  ASSERT_NE(codes, nullptr);
  int negative = 0;
  for (int64_t r = 0; r < v.rows; ++r) {
    for (int64_t j = 0; j < 16; ++j) {
      for (int c = 0; c < 2; ++c) {
        const int k = static_cast<int>(t.code(r, j, c));
        const int stored = static_cast<int8_t>(codes->data[(r * 16 + j) * 2 + c]);
        ASSERT_EQ(stored, k >= 128 ? k - 256 : k) << r << "," << j << "," << c;
        negative += stored < 0;
      }
    }
  }
  EXPECT_GT(negative, 0);  // the wrap-around was exercised

  // (c) config.json
  const nlohmann::json config = ReadJson(out / "config.json");
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(config["torch_dtype"], "float16");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_EQ(config["hidden_size"], 64);
  EXPECT_EQ(config["intermediate_size"], 172);
  EXPECT_EQ(config["num_key_value_heads"], 4);
  EXPECT_EQ(config["vocab_size"], 512);
  EXPECT_EQ(config["rms_norm_eps"], 1e-5);
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "aqlm");
  EXPECT_EQ(qc["in_group_size"], 4);
  EXPECT_EQ(qc["out_group_size"], 1);
  EXPECT_EQ(qc["num_codebooks"], 2);
  EXPECT_EQ(qc["nbits_per_codebook"], 8);
  EXPECT_EQ(qc["linear_weights_not_to_quantize"],
            nlohmann::json::array({"model.embed_tokens.weight", "lm_head.weight"}));
  // Nothing but the three files (no tokenizer asked for), no temporary folder left.
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(AqlmHf, LinearsThatHfCannotGroupAreFloat16AndListed) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  Result<LlamaModel> m = LoadModel(Stories260kGguf());
  ASSERT_TRUE(m.ok());
  // g = 8: down_proj's 172 inputs are not whole groups (lowbit pads the tail, HF cannot).
  const LlamaModel q = QuantizeLinears(*m, "aqlm_2x8g8");
  const fs::path dir = TempDir("g8");
  ExpectRoundTrip(q, dir / "hf", 8);
  const nlohmann::json qc = ReadJson(dir / "hf" / "config.json")["quantization_config"];
  nlohmann::json listed = nlohmann::json::array({"model.embed_tokens.weight", "lm_head.weight"});
  for (int l = 0; l < 5; ++l) listed.push_back("model.layers." + std::to_string(l) + ".mlp.down_proj.weight");
  EXPECT_EQ(qc["linear_weights_not_to_quantize"], listed);
  Result<SafetensorsFile> f = SafetensorsFile::Open((dir / "hf" / "model.safetensors").string());
  ASSERT_TRUE(f.ok());
  ExpectTensor(*f, "model.layers.0.mlp.down_proj.weight", SafetensorsDtype::kF16, {64, 172});
  EXPECT_EQ(f->FindTensor("model.layers.0.mlp.down_proj.codes"), nullptr);
  fs::remove_all(dir);
}

TEST(AqlmHf, Codes1x16AreWrappedInt16) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  Result<LlamaModel> m = LoadModel(Stories260kGguf());
  ASSERT_TRUE(m.ok());
  LlamaModel q = QuantizeLinears(*m, "aqlm:m=1,b=16,g=4");
  // Small tensors use few of the 65536 codewords (codes < 32768). Swap the codebook halves and
  // flip each code's top bit: the weights decode the same, and every code is now >= 32768.
  auto buffers = std::make_shared<std::deque<std::vector<uint8_t>>>();
  for (size_t l = 0; l < q.layers.size(); ++l) {
    for (auto& [name, w] : Linears(q.layers[l], l)) {
      const auto& f = static_cast<const AqlmFormat&>(*w->format);
      AqlmTensor t = f.Unpack(w->data, w->rows, w->cols);
      AqlmTensor s = t;
      for (uint32_t& c : s.codes) c ^= 0x8000u;
      for (uint32_t k = 0; k < 65536; ++k) {
        std::copy(t.codeword(0, k), t.codeword(0, k) + 4, s.codebooks.begin() + (k ^ 0x8000u) * 4);
      }
      std::vector<uint8_t>& bytes = buffers->emplace_back(w->n_bytes());
      f.Pack(s, bytes.data());
      w->data = bytes.data();
    }
  }
  q.storage = std::shared_ptr<const void>(
      std::make_shared<std::pair<std::shared_ptr<const void>, decltype(buffers)>>(q.storage,
                                                                                  buffers));
  PrepareModelForIsa(q, kernels::ActiveIsa());
  const fs::path dir = TempDir("1x16");
  ExpectRoundTrip(q, dir / "hf", 4);
  Result<SafetensorsFile> f = SafetensorsFile::Open((dir / "hf" / "model.safetensors").string());
  ASSERT_TRUE(f.ok());
  ExpectTensor(*f, "model.layers.0.self_attn.o_proj.codes", SafetensorsDtype::kI16, {64, 16, 1});
  ExpectTensor(*f, "model.layers.0.self_attn.o_proj.codebooks", SafetensorsDtype::kF16,
               {1, 65536, 1, 4});
  const WeightView& o = q.layers[0].wo;
  const AqlmTensor t = static_cast<const AqlmFormat&>(*o.format).Unpack(o.data, o.rows, o.cols);
  const SafetensorsTensor* codes = f->FindTensor("model.layers.0.self_attn.o_proj.codes");
  for (int64_t i = 0; i < o.rows * 16; ++i) {
    int16_t stored;
    std::memcpy(&stored, codes->data + 2 * i, 2);
    ASSERT_GE(t.codes[i], 32768u);
    ASSERT_EQ(stored, static_cast<int>(t.codes[i]) - 65536) << i;  // two's complement
  }
  EXPECT_EQ(ReadJson(dir / "hf" / "config.json")["quantization_config"]["nbits_per_codebook"], 16);
  fs::remove_all(dir);
}

TEST(AqlmHf, SmolLm2TokenizerJsonEncodesLikeTheGgufTokenizer) {
  const std::string path = SmolLm2Path();
  LOWBIT_REQUIRE_FILE(path);
  const std::string wiki_path = testing::SharedDataPath("text/wiki.test.raw");
  LOWBIT_REQUIRE_FILE(wiki_path);
  Result<GgufFile> gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok());
  Result<HfTokenizerFiles> files = HfTokenizerFilesFromGguf(*gguf);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  const fs::path dir = TempDir("tok");
  std::ofstream(dir / "tokenizer.json") << files->tokenizer_json;
  std::ofstream(dir / "tokenizer_config.json") << files->tokenizer_config_json;
  Result<std::unique_ptr<Tokenizer>> hf = TokenizerFromHfJson((dir / "tokenizer.json").string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  Result<std::unique_ptr<Tokenizer>> ref = TokenizerFromGguf(*gguf);
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ((*hf)->vocab_size(), (*ref)->vocab_size());
  EXPECT_EQ((*hf)->bos(), (*ref)->bos());
  EXPECT_EQ((*hf)->eos(), (*ref)->eos());
  EXPECT_EQ((*hf)->add_bos_default(), (*ref)->add_bos_default());
  std::ifstream in(wiki_path, std::ios::binary);
  std::string wiki((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Several paragraphs (headings, numbers, punctuation, " @-@ ") plus special tokens inline.
  const std::string text = wiki.substr(0, 6000) + "<|im_start|>user\nHi 123<|im_end|>";
  const std::vector<int32_t> ids = (*ref)->Encode(text, false);
  EXPECT_GT(ids.size(), 1000u);
  EXPECT_EQ((*hf)->Encode(text, false), ids);
  const nlohmann::json config = nlohmann::json::parse(files->tokenizer_config_json);
  EXPECT_EQ(config["bos_token"], (*ref)->piece((*ref)->bos()));

  // Independent reference: HF `tokenizers` (in .venv when scripts/setup.sh installed it) runs the
  // exported tokenizer.json on the same text.
  const std::string python = std::string(LOWBIT_SOURCE_DIR) + "/.venv/bin/python";
  if (RunShell(python + " -c 'import tokenizers'").exit_code == 0) {
    std::ofstream(dir / "text.txt", std::ios::binary) << text;
    const CliRun py = RunShell(
        python +
        " -c 'import sys; from tokenizers import Tokenizer; t = Tokenizer.from_file(sys.argv[1]); "
        "print(\" \".join(map(str, t.encode(open(sys.argv[2], encoding=\"utf-8\").read(), "
        "add_special_tokens=False).ids)))' " +
        (dir / "tokenizer.json").string() + " " + (dir / "text.txt").string());
    ASSERT_EQ(py.exit_code, 0) << py.out;
    std::vector<int32_t> py_ids;
    std::istringstream ss(py.out);
    for (int32_t id; ss >> id;) py_ids.push_back(id);
    EXPECT_EQ(py_ids, ids);
  } else {
    std::printf("HF tokenizers not installed in .venv: python cross-check skipped\n");
  }
  EXPECT_TRUE(config.contains("chat_template"));
  fs::remove_all(dir);
}

TEST(AqlmHf, CliExportsACalibratedGgufAndRejectsBadInput) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  const fs::path dir = TempDir("cli");
  const std::string gguf = (dir / "aqlm.gguf").string();
  CliRun q = RunCli("quantize -m " + Stories260kGguf() + " -o " + gguf +
                    " --method aqlm:aqlm:m=2,b=8,g=4 --calib self --calib-seqs 2 --calib-len 32 -q");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  const fs::path out = dir / "hf";

  // stories260K's tokenizer is SentencePiece: refused by name unless --skip-tokenizer; nothing
  // written either way it fails.
  CliRun spm = RunCli("export-hf-aqlm " + gguf + " " + out.string());
  EXPECT_EQ(spm.exit_code, 2);
  EXPECT_NE(spm.out.find("tokenizer.ggml.model = 'llama'"), std::string::npos) << spm.out;
  EXPECT_FALSE(fs::exists(out));

  CliRun ok = RunCli("export-hf-aqlm " + gguf + " " + out.string() + " --skip-tokenizer");
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  Result<LlamaModel> from_gguf = LoadModel(gguf);
  Result<LlamaModel> from_hf = LoadModel(out.string());
  ASSERT_TRUE(from_gguf.ok() && from_hf.ok()) << from_hf.status().ToString();
  Expected want(*from_gguf, true, 4);
  const std::vector<int32_t> ids = SomeIds(512, 32);
  EXPECT_EQ(Logits(*from_hf, ids), Logits(want.model, ids));

  // An existing non-empty folder needs --force; it is then replaced whole.
  std::ofstream(out / "stale.txt") << "x";
  CliRun again = RunCli("export-hf-aqlm " + gguf + " " + out.string() + " --skip-tokenizer");
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  EXPECT_TRUE(fs::exists(out / "stale.txt"));
  CliRun forced =
      RunCli("export-hf-aqlm " + gguf + " " + out.string() + " --skip-tokenizer --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.out;
  EXPECT_FALSE(fs::exists(out / "stale.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));

  // Not AQLM, or no file: exit 2 naming the problem, nothing left next to the target.
  const fs::path empty = dir / "bad";
  fs::create_directories(empty);
  CliRun plain = RunCli("export-hf-aqlm " + Stories260kGguf() + " " + (empty / "x").string() +
                        " --skip-tokenizer");
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_NE(plain.out.find("no linear layer is in the AQLM format"), std::string::npos)
      << plain.out;
  CliRun missing = RunCli("export-hf-aqlm " + (dir / "missing.gguf").string() + " " +
                          (empty / "x").string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(fs::is_empty(empty));
  EXPECT_EQ(RunCli("export-hf-aqlm --help").exit_code, 0);
  fs::remove_all(dir);
}

TEST(AqlmHf, LoaderRejectsMalformedAqlmTensors) {
  LOWBIT_REQUIRE_FILE(Stories260kGguf());
  Result<LlamaModel> m = LoadModel(Stories260kGguf());
  ASSERT_TRUE(m.ok());
  const LlamaModel q = QuantizeLinears(*m, "aqlm:m=1,b=6,g=4");
  const fs::path dir = TempDir("bad_load");
  ExportHfAqlmOptions o;
  o.skip_tokenizer = true;
  ASSERT_TRUE(ExportHfAqlm(q, nullptr, (dir / "hf").string(), o).ok());
  ASSERT_TRUE(LoadModel((dir / "hf").string()).ok());  // b = 6: codes re-packed both ways

  // config.json edits: a different nbits, out_group_size 2, an unknown method.
  const nlohmann::json config = ReadJson(dir / "hf" / "config.json");
  const auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json c = config;
    c["quantization_config"][key] = value;
    std::ofstream(dir / "hf" / "config.json") << c.dump();
    return LoadModel((dir / "hf").string()).status();
  };
  Status s = with("nbits_per_codebook", 8);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("codebooks' has shape [1, 64, 1, 4], expected [1, 256, 1, 4]"),
            std::string::npos)
      << s.message();
  s = with("nbits_per_codebook", 12);
  EXPECT_NE(s.message().find("has dtype I8, expected I16"), std::string::npos) << s.message();
  s = with("out_group_size", 2);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("out_group_size = 2"), std::string::npos) << s.message();
  s = with("quant_method", "gptq");
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("'gptq'"), std::string::npos) << s.message();
  std::ofstream(dir / "hf" / "config.json") << config.dump();

  // A code outside [0, 2^6): written into the file's first q_proj code.
  Result<SafetensorsFile> f = SafetensorsFile::Open((dir / "hf" / "model.safetensors").string());
  ASSERT_TRUE(f.ok());
  const uint64_t offset =
      f->data_offset() + f->FindTensor("model.layers.0.self_attn.q_proj.codes")->offset;
  {
    std::fstream io(dir / "hf" / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(offset));
    io.put(static_cast<char>(70));
  }
  s = LoadModel((dir / "hf").string()).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("q_proj.codes' element 0 is code 70, outside [0, 64)"),
            std::string::npos)
      << s.message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit
