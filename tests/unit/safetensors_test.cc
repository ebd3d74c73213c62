// safetensors reader/writer, Hugging Face folders (single and sharded) and config.json.
// Hand-written files (header JSON typed out here) check the reader independently of the writer.
#include "lowbit/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "lowbit/format_registry.h"
#include "lowbit/hf_config.h"
#include "test_support.h"

namespace lowbit {
namespace {

bool Contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/lowbit_st_test_" + std::to_string(::getpid()) + "_" + name;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A safetensors file from header text and data bytes.
std::vector<uint8_t> MakeFile(const std::string& header, const std::vector<uint8_t>& data,
                              std::optional<uint64_t> declared_length = std::nullopt) {
  const uint64_t n = declared_length.value_or(header.size());
  std::vector<uint8_t> out(8 + header.size() + data.size());
  std::memcpy(out.data(), &n, 8);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return out;
}

std::vector<uint8_t> Floats(std::initializer_list<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

void ExpectFails(const std::vector<uint8_t>& bytes, const std::vector<std::string>& substrings) {
  auto file = SafetensorsFile::FromBytes(bytes, "bad.safetensors");
  ASSERT_FALSE(file.ok()) << "expected failure containing '" << substrings[0] << "'";
  EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << file.status().message();
  EXPECT_TRUE(Contains(file.status().message(), "bad.safetensors: field '"))
      << file.status().message();
  for (const std::string& s : substrings) {
    EXPECT_TRUE(Contains(file.status().message(), s))
        << "message: " << file.status().message() << "\nmissing: " << s;
  }
}

TEST(Safetensors, ReadsAHandWrittenFile) {
  // F16 codes 0x3c00 = 1.0 and 0xc000 = -2.0; then an F32 scalar 0.5; then an empty I64 tensor.
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("h":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},)"
                             R"("s":{"dtype":"F32","shape":[],"data_offsets":[4,8]},)"
                             R"("e":{"dtype":"I64","shape":[3,0],"data_offsets":[8,8]}})";
  std::vector<uint8_t> data = {0x00, 0x3c, 0x00, 0xc0};
  const std::vector<uint8_t> half = Floats({0.5f});
  data.insert(data.end(), half.begin(), half.end());
  auto file = SafetensorsFile::FromBytes(MakeFile(header, data), "hand.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->data_offset(), 8 + header.size());
  ASSERT_EQ(file->tensors().size(), 3u);
  const SafetensorsTensor* h = file->FindTensor("h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, SafetensorsDtype::kF16);
  EXPECT_EQ(h->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(h->rows, 1);
  EXPECT_EQ(h->cols, 2);
  EXPECT_EQ(h->n_bytes, 4u);
  ASSERT_NE(h->format, nullptr);
  EXPECT_EQ(h->format->spec(), "float:type=f16");
  float values[2];
  h->format->Dequantize(h->data, h->rows, h->cols, values);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.0f);
  const SafetensorsTensor* s = file->FindTensor("s");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->rows, 1);
  EXPECT_EQ(s->cols, 1);
  float scalar = 0;
  s->format->Dequantize(s->data, 1, 1, &scalar);
  EXPECT_EQ(scalar, 0.5f);
  const SafetensorsTensor* e = file->FindTensor("e");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->n_bytes, 0u);
  EXPECT_EQ(e->format, nullptr) << "I64 has no lowbit format";
  EXPECT_EQ(e->rows * e->cols, 0);
  EXPECT_EQ(file->FindTensor("nope"), nullptr);
}

TEST(Safetensors, WriteReadRoundTrip) {
  std::mt19937_64 rng(3);
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.SetMetadata("lowbit.note", "round trip");
  struct Expected {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Expected> expected;
  const auto add = [&](const std::string& name, SafetensorsDtype dtype,
                       std::vector<int64_t> shape) {
    int64_t n = SafetensorsDtypeSize(dtype);
    for (int64_t d : shape) n *= d;
    std::vector<uint8_t> bytes(static_cast<size_t>(n));
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    ASSERT_TRUE(w.AddTensor(name, shape, dtype, bytes).ok()) << name;
    expected.push_back({name, dtype, shape, bytes});
  };
  add("model.embed_tokens.weight", SafetensorsDtype::kBf16, {7, 5});
  add("model.norm.weight", SafetensorsDtype::kF32, {5});
  add("lm_head.weight", SafetensorsDtype::kF16, {7, 5});
  add("codes", SafetensorsDtype::kI16, {3, 2, 4});
  add("scalar", SafetensorsDtype::kF64, {});
  add("odd", SafetensorsDtype::kU8, {3});
  // Through a Format: f16 packed bytes are F16 data.
  FormatPtr f16 = ParseFormat("f16").value();
  const float x[3] = {1.0f, 0.5f, -3.0f};
  std::vector<uint8_t> packed(6);
  ASSERT_TRUE(f16->Quantize(x, 1, 3, packed.data()).ok());
  ASSERT_TRUE(w.AddTensor("via_format", {3}, *f16, packed).ok());
  expected.push_back({"via_format", SafetensorsDtype::kF16, {3}, packed});

  const std::string path = TempPath("rt.safetensors");
  ASSERT_TRUE(w.WriteAtomic(path).ok());
  auto bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(*bytes == testing::ReadFileBytes(path));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->data_offset() % 8, 0u) << "header padded to 8 bytes";
  EXPECT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->metadata().at("lowbit.note"), "round trip");
  ASSERT_EQ(file->tensors().size(), expected.size());
  for (const Expected& e : expected) {
    const SafetensorsTensor* t = file->FindTensor(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->dtype, e.dtype) << e.name;
    EXPECT_EQ(t->shape, e.shape) << e.name;
    ASSERT_EQ(t->n_bytes, e.bytes.size()) << e.name;
    EXPECT_EQ(0, std::memcmp(t->data, e.bytes.data(), t->n_bytes)) << e.name;
  }
  // Data order is AddTensor order.
  EXPECT_EQ(file->tensors()[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(file->FindTensor("lm_head.weight")->format->spec(), "float:type=f16");
  EXPECT_EQ(file->FindTensor("lm_head.weight")->rows, 7);
  EXPECT_EQ(file->FindTensor("lm_head.weight")->cols, 5);
  EXPECT_EQ(file->FindTensor("codes")->rows, 6);
  EXPECT_EQ(file->FindTensor("codes")->cols, 4);
  EXPECT_EQ(file->FindTensor("model.norm.weight")->format->spec(), "float:type=f32");
  EXPECT_EQ(file->FindTensor("model.embed_tokens.weight")->format->spec(), "float:type=bf16");
  float back[3];
  const SafetensorsTensor* vf = file->FindTensor("via_format");
  vf->format->Dequantize(vf->data, 1, 3, back);
  EXPECT_EQ(back[2], -3.0f);
  std::remove(path.c_str());
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter w;
  const std::vector<uint8_t> bytes(12);
  EXPECT_TRUE(Contains(w.AddTensor("t", {4}, SafetensorsDtype::kF32, bytes).message(), "needs 16"));
  EXPECT_FALSE(w.AddTensor("t", {-3}, SafetensorsDtype::kF32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("__metadata__", {3}, SafetensorsDtype::kF32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("", {3}, SafetensorsDtype::kF32, bytes).ok());
  ASSERT_TRUE(w.AddTensor("t", {3}, SafetensorsDtype::kF32, bytes).ok());
  EXPECT_TRUE(Contains(w.AddTensor("t", {3}, SafetensorsDtype::kF32, bytes).message(), "twice"));
  // Only float-family formats have a dtype.
  for (const PresetInfo& p : FormatRegistry::Get().presets()) {
    FormatPtr f = ParseFormat(p.spec).value();
    if (f->family() == "float") continue;
    auto st = w.AddTensor("q", {1}, *f, bytes);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(st.message(), "no safetensors dtype"));
    break;
  }
  EXPECT_EQ(SafetensorsWriter().WriteAtomic(TempPath("no/such/dir/x.safetensors")).code(),
            StatusCode::kIoError);
}

const std::string kOne = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(SafetensorsMalformed, HeaderLength) {
  ExpectFails({1, 2, 3}, {"'header length' at offset 0", "too short"});
  ExpectFails(MakeFile("{" + kOne + "}", Floats({1, 2}), 1000),
              {"'header length'", "runs past the end"});
  ExpectFails(MakeFile("{" + kOne + "}", Floats({1, 2}), ~0ull), {"'header length'", "100 MB"});
  ExpectFails(MakeFile("{" + kOne + "}", Floats({1, 2}), 200'000'000), {"100 MB limit"});
}

TEST(SafetensorsMalformed, BadJson) {
  ExpectFails(MakeFile("{\"t\":{\"dtype\":", {}), {"'header' at offset 8", "invalid JSON"});
  ExpectFails(MakeFile("[1, 2]", {}), {"'header'", "must be an object"});
  ExpectFails(MakeFile(" {}", {}), {"'header'", "must be an object"});
  ExpectFails(MakeFile("{}x", {}), {"'header'", "invalid JSON"});
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectFails(MakeFile(deep, {}), {"'header'", "nested deeper"});
  // Brackets inside strings do not count as nesting.
  auto ok = SafetensorsFile::FromBytes(
      MakeFile(R"({"__metadata__":{"k":"[[[[[[[[[[[[[[[[[[[[[[[[\"[[["}})", {}));
  EXPECT_TRUE(ok.ok()) << ok.status().message();
  ExpectFails(MakeFile(R"({"__metadata__":[1]})", {}), {"'__metadata__'", "must be an object"});
  ExpectFails(MakeFile(R"({"__metadata__":{"k":1}})", {}), {"'__metadata__.k'", "strings"});
  ExpectFails(MakeFile(R"({"t":[1]})", {}), {"'t'", "must be an object"});
}

TEST(SafetensorsMalformed, BadDtypesAndShapes) {
  ExpectFails(MakeFile(R"({"t":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", Floats({1, 2})),
              {"'t.dtype'", "unknown dtype \"F7\""});
  ExpectFails(MakeFile(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", Floats({1, 2})),
              {"'t.dtype'", "missing"});
  ExpectFails(MakeFile(R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", Floats({1, 2})),
              {"'t.dtype'"});
  ExpectFails(MakeFile(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", {}),
              {"'t.shape[0]'", "non-negative integer, got -2"});
  ExpectFails(MakeFile(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", {}),
              {"'t.shape[0]'", "got 2.5"});
  ExpectFails(MakeFile(R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", {}),
              {"'t.shape'"});
  ExpectFails(MakeFile(R"({"t":{"dtype":"F32","shape":[1073741824,1073741824],)"
                       R"("data_offsets":[0,8]}})",
                       {}),
              {"'t.shape[1]'", "exceed 2^50"});
  ExpectFails(MakeFile(R"({"t":{"dtype":"F32","shape":[18446744073709551615],)"
                       R"("data_offsets":[0,8]}})",
                       {}),
              {"'t.shape[0]'", "exceed 2^50"});
}

TEST(SafetensorsMalformed, BadOffsets) {
  const auto file = [](const std::string& offsets, size_t n_floats) {
    std::vector<uint8_t> data(n_floats * 4, 0);
    return MakeFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":)" + offsets + "}}", data);
  };
  ASSERT_TRUE(SafetensorsFile::FromBytes(file("[0,8]", 2)).ok());
  ExpectFails(file("[0,8]", 1), {"'t.data_offsets'", "past the end of the data (4 bytes)"});
  ExpectFails(file("[8,0]", 2), {"'t.data_offsets'", "before begin"});
  ExpectFails(file("[0,12]", 3), {"'t.data_offsets'", "holds 12 bytes", "need 8"});
  ExpectFails(file("[4,12]", 3), {"'t.data_offsets'", "leaves a hole"});
  ExpectFails(file("[0,8]", 3), {"'data'", "4 bytes after the last tensor"});
  ExpectFails(file("[0]", 2), {"'t.data_offsets'", "[begin, end]"});
  ExpectFails(file("[0,-8]", 2), {"'t.data_offsets'"});
  ExpectFails(file("[18446744073709551615,8]", 2), {"'t.data_offsets'"});
  // Two tensors over the same bytes.
  const std::string overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  ExpectFails(MakeFile(overlap, Floats({1, 2})), {"'b.data_offsets'", "overlaps"});
}

// Every prefix of a valid file fails cleanly (the tensors tile the data exactly).
TEST(SafetensorsMalformed, EveryTruncationFailsAndCorruptionsDoNotCrash) {
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  ASSERT_TRUE(w.AddTensor("a", {2, 2}, SafetensorsDtype::kF32, Floats({1, 2, 3, 4})).ok());
  ASSERT_TRUE(w.AddTensor("b", {3}, SafetensorsDtype::kU8, std::vector<uint8_t>{1, 2, 3}).ok());
  const std::vector<uint8_t> full = w.Serialize().value();
  ASSERT_TRUE(SafetensorsFile::FromBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto f =
        SafetensorsFile::FromBytes(std::vector<uint8_t>(full.begin(), full.begin() + n), "cut");
    ASSERT_FALSE(f.ok()) << n;
    EXPECT_TRUE(Contains(f.status().message(), "cut: field '")) << f.status().message();
  }
  std::mt19937_64 rng(9);
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> b = full;
    b[rng() % b.size()] = static_cast<uint8_t>(rng());
    (void)SafetensorsFile::FromBytes(std::move(b));
  }
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folders

class HfFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempPath(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  }
  void TearDown() override {
    for (const std::string& f : created_) std::remove((dir_ + "/" + f).c_str());
    ::rmdir(dir_.c_str());
  }
  void Shard(const std::string& name, const std::vector<std::string>& tensors) {
    SafetensorsWriter w;
    float v = 1.0f;
    for (const std::string& t : tensors) {
      ASSERT_TRUE(w.AddTensor(t, {2}, SafetensorsDtype::kF32, Floats({v, -v})).ok());
      v += 1.0f;
    }
    ASSERT_TRUE(w.WriteAtomic(dir_ + "/" + name).ok());
    created_.push_back(name);
  }
  void Text(const std::string& name, const std::string& text) {
    WriteText(dir_ + "/" + name, text);
    created_.push_back(name);
  }
  std::string dir_;
  std::vector<std::string> created_;
};

TEST_F(HfFolder, SingleFile) {
  Shard("model.safetensors", {"w1", "w2"});
  auto model = SafetensorsModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(model->shards().size(), 1u);
  EXPECT_EQ(model->tensors().size(), 2u);
  const SafetensorsTensor* w2 = model->FindTensor("w2");
  ASSERT_NE(w2, nullptr);
  float v[2];
  w2->format->Dequantize(w2->data, 1, 2, v);
  EXPECT_EQ(v[0], 2.0f);
}

TEST_F(HfFolder, ShardedWithIndex) {
  Shard("model-00001-of-00002.safetensors", {"a", "b"});
  Shard("model-00002-of-00002.safetensors", {"c"});
  Text("model.safetensors.index.json",
       R"({"metadata":{"total_size":24},"weight_map":{)"
       R"("a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
       R"("c":"model-00002-of-00002.safetensors"}})");
  auto model = SafetensorsModel::Open(dir_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(model->shards().size(), 2u);
  ASSERT_EQ(model->tensors().size(), 3u);
  EXPECT_EQ(model->metadata().at("total_size"), "24");
  const SafetensorsTensor* c = model->FindTensor("c");
  ASSERT_NE(c, nullptr);
  float v[2];
  c->format->Dequantize(c->data, 1, 2, v);
  EXPECT_EQ(v[1], -1.0f);  // first tensor of the second shard
  // Moving the model keeps every tensor pointer valid.
  SafetensorsModel moved = std::move(model).value();
  EXPECT_EQ(moved.FindTensor("a")->n_bytes, 8u);
}

TEST_F(HfFolder, IndexErrors) {
  EXPECT_EQ(SafetensorsModel::Open(dir_).status().code(), StatusCode::kNotFound);
  Shard("s1.safetensors", {"a"});
  Shard("s2.safetensors", {"a", "b"});
  Text("model.safetensors.index.json",
       R"({"weight_map":{"a":"s1.safetensors","x":"s1.safetensors"}})");
  auto missing_tensor = SafetensorsModel::Open(dir_);
  ASSERT_FALSE(missing_tensor.ok());
  EXPECT_TRUE(Contains(missing_tensor.status().message(), "'weight_map.x'"));
  Text("model.safetensors.index.json", R"({"weight_map":{"a":"../s1.safetensors"}})");
  EXPECT_TRUE(Contains(SafetensorsModel::Open(dir_).status().message(), "not a file name"));
  Text("model.safetensors.index.json", R"({"weight_map":{"a":"nope.safetensors"}})");
  EXPECT_EQ(SafetensorsModel::Open(dir_).status().code(), StatusCode::kNotFound);
  Text("model.safetensors.index.json",
       R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  // s2 holds another "a": a tensor in two shards.
  auto dup = SafetensorsModel::Open(dir_);
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(Contains(dup.status().message(), "tensor 'a' also appears"))
      << dup.status().message();
  Text("model.safetensors.index.json", R"({"weight_map":[1]})");
  EXPECT_TRUE(Contains(SafetensorsModel::Open(dir_).status().message(), "'weight_map'"));
  Text("model.safetensors.index.json", "{not json");
  EXPECT_TRUE(Contains(SafetensorsModel::Open(dir_).status().message(), "invalid JSON"));
}

// ---------------------------------------------------------------------------------------------
// config.json

// Key values of Qwen/Qwen2.5-0.5B's published config.json.
const char* kQwenConfig = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

TEST(HfConfig, Qwen2) {
  auto c = ParseHfConfig(kQwenConfig);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->architectures, std::vector<std::string>{"Qwen2ForCausalLM"});
  EXPECT_EQ(c->model_type, "qwen2");
  EXPECT_EQ(c->hidden_size, 896);
  EXPECT_EQ(c->intermediate_size, 4864);
  EXPECT_EQ(c->num_hidden_layers, 24);
  EXPECT_EQ(c->num_attention_heads, 14);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 64);  // 896 / 14
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_TRUE(c->attention_bias) << "qwen2 q/k/v always have a bias";
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{151643});
}

TEST(HfConfig, LlamaWithRopeScalingAndDefaults) {
  // Shaped like meta-llama/Llama-3.2-1B-Instruct (rope_scaling llama3, eos list, head_dim).
  auto c = ParseHfConfig(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
      "hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,
      "num_key_value_heads":8,"head_dim":64,"vocab_size":128256,"max_position_embeddings":131072,
      "rms_norm_eps":1e-05,"rope_theta":500000.0,"attention_bias":false,
      "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
                      "original_max_position_embeddings":8192,"rope_type":"llama3"},
      "eos_token_id":[128001,128008,128009],"bos_token_id":128000,"tie_word_embeddings":true})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->attention_bias);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "llama3");
  EXPECT_EQ(c->rope_scaling->factor, 32.0);
  EXPECT_EQ(c->rope_scaling->low_freq_factor, 1.0);
  EXPECT_EQ(c->rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->head_dim, 64);
  // Minimal llama config: defaults from transformers' LlamaConfig.
  auto d = ParseHfConfig(R"({"model_type":"llama","hidden_size":64,"intermediate_size":172,
      "num_hidden_layers":5,"num_attention_heads":8,"vocab_size":512,
      "rope_scaling":{"type":"linear","factor":2.0}})");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->num_key_value_heads, 8);
  EXPECT_EQ(d->head_dim, 8);
  EXPECT_EQ(d->max_position_embeddings, 2048);
  EXPECT_EQ(d->rms_norm_eps, 1e-6);
  EXPECT_EQ(d->rope_theta, 10000.0);
  EXPECT_FALSE(d->tie_word_embeddings);
  EXPECT_FALSE(d->attention_bias);
  EXPECT_EQ(d->hidden_act, "silu");
  EXPECT_EQ(d->rope_scaling->type, "linear");
  EXPECT_FALSE(d->bos_token_id.has_value());
}

TEST(HfConfig, ErrorsNameTheKey) {
  const auto fails = [](const std::string& json, const std::string& substring) {
    auto c = ParseHfConfig(json, "cfg.json");
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(c.status().message(), "cfg.json")) << c.status().message();
    EXPECT_TRUE(Contains(c.status().message(), substring))
        << c.status().message() << "\nmissing: " << substring;
  };
  const std::string base = R"("intermediate_size":8,"num_hidden_layers":1,"vocab_size":4)";
  fails("{" + base + R"(,"num_attention_heads":2})", "field 'hidden_size': missing");
  fails("{" + base + R"(,"hidden_size":"64","num_attention_heads":2})",
        "field 'hidden_size': expected a positive integer, got \"64\"");
  fails("{" + base + R"(,"hidden_size":-64,"num_attention_heads":2})", "'hidden_size'");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":6})",
        "field 'num_attention_heads': 6 heads do not divide hidden_size 64");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":8,"num_key_value_heads":3})",
        "field 'num_key_value_heads'");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":8,"rms_norm_eps":0})",
        "field 'rms_norm_eps'");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":8,"tie_word_embeddings":1})",
        "field 'tie_word_embeddings'");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":8,"rope_scaling":{"factor":2}})",
        "field 'rope_scaling.rope_type'");
  fails("{" + base + R"(,"hidden_size":64,"num_attention_heads":8,"eos_token_id":"x"})",
        "field 'eos_token_id'");
  fails("{\"hidden_size\": 64,", "invalid JSON");
  fails("[1]", "expected a JSON object");
}

TEST(HfConfig, LoadsFromAFolderOrFile) {
  const std::string dir = TempPath("cfg_dir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  WriteText(dir + "/config.json", kQwenConfig);
  auto from_dir = LoadHfConfig(dir);
  ASSERT_TRUE(from_dir.ok()) << from_dir.status().message();
  EXPECT_EQ(from_dir->hidden_size, 896);
  auto from_file = LoadHfConfig(dir + "/config.json");
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ(from_file->vocab_size, 151936);
  std::remove((dir + "/config.json").c_str());
  auto missing = LoadHfConfig(dir);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace lowbit
