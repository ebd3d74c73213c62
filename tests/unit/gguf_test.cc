// GGUF reader and writer: the real stories260K.gguf (written by llama.cpp's gguf-py), write -> read
// round trips of every metadata type and of registry formats, a byte-identical rewrite, and
// malformed files built byte by byte (each must fail with a message naming the field).
#include "lowbit/gguf.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "lowbit/format_registry.h"
#include "test_support.h"

namespace lowbit {
namespace {

using testing::ReadFileBytes;
using testing::SharedDataPath;

std::string StoriesPath() { return SharedDataPath("stories260K/stories260K.gguf"); }

bool Contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/lowbit_gguf_test_" + std::to_string(::getpid()) + "_" + name;
}

// The value of a Result that the test expects to be ok.
template <class T>
T V(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : T{};
}

FormatPtr Must(const std::string& spec) {
  auto f = ParseFormat(spec);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? *f : nullptr;
}

// ---------------------------------------------------------------------------------------------
// stories260K.gguf

TEST(GgufStories, HeaderAndMetadata) {
  LOWBIT_REQUIRE_FILE(StoriesPath());
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->file_size(), 1185376u);
  // 19 key-value pairs in gguf-py's order (as listed by the gguf Python package).
  ASSERT_EQ(file->metadata().size(), 19u);
  EXPECT_EQ(file->metadata()[0].key, "tokenizer.ggml.tokens");
  EXPECT_EQ(file->metadata()[0].file_offset, 24u);
  EXPECT_EQ(file->metadata()[18].key, "llama.attention.layer_norm_rms_epsilon");

  EXPECT_EQ(V(file->GetInt("llama.embedding_length")), 64);
  EXPECT_EQ(V(file->GetInt("llama.block_count")), 5);
  EXPECT_EQ(V(file->GetInt("llama.attention.head_count")), 8);
  EXPECT_EQ(V(file->GetInt("llama.attention.head_count_kv")), 4);
  EXPECT_EQ(V(file->GetInt("llama.context_length")), 2048);
  EXPECT_EQ(V(file->GetInt("llama.feed_forward_length")), 172);
  EXPECT_EQ(V(file->GetInt("llama.rope.dimension_count")), 8);
  EXPECT_EQ(V(file->GetInt("tokenizer.ggml.bos_token_id")), 1);
  EXPECT_EQ(V(file->GetInt("tokenizer.ggml.eos_token_id")), 2);
  EXPECT_EQ(V(file->GetInt("tokenizer.ggml.padding_token_id")), 4294967295);  // uint32 -1
  EXPECT_EQ(V(file->GetFloat("llama.attention.layer_norm_rms_epsilon")),
            static_cast<double>(1e-5f));
  EXPECT_EQ(V(file->GetString("general.architecture")), "llama");
  EXPECT_EQ(V(file->GetString("tokenizer.ggml.model")), "llama");
  EXPECT_EQ(file->Find("llama.block_count")->type, GgufType::kUint32);

  auto tokens = file->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[300], "\xe2\x96\x81ha");  // U+2581 "lower one eighth block" + "ha"
  auto scores = file->GetFloatArray("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok());
  ASSERT_EQ(scores->size(), 512u);
  EXPECT_EQ((*scores)[0], 0.0f);
  EXPECT_EQ((*scores)[300], -41.0f);
  EXPECT_EQ((*scores)[511], -252.0f);
  auto types = file->GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  ASSERT_EQ(types->size(), 512u);
  EXPECT_EQ((*types)[0], 2);    // unknown
  EXPECT_EQ((*types)[1], 3);    // control
  EXPECT_EQ((*types)[3], 6);    // byte
  EXPECT_EQ((*types)[300], 1);  // normal
  EXPECT_EQ(file->Find("tokenizer.ggml.token_type")->array_type, GgufType::kInt32);
}

TEST(GgufStories, GettersNameFileAndKey) {
  LOWBIT_REQUIRE_FILE(StoriesPath());
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto missing = file->GetInt("llama.no_such_key");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), "stories260K.gguf"));
  EXPECT_TRUE(Contains(missing.status().message(), "llama.no_such_key"));
  EXPECT_EQ(V(file->GetIntOr("llama.no_such_key", 7)), 7);
  auto wrong = file->GetInt("general.architecture");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(wrong.status().message(), "'general.architecture' has type string"));
  EXPECT_FALSE(file->GetIntOr("general.architecture", 1).ok()) << "present with the wrong type";
  EXPECT_FALSE(file->GetString("llama.block_count").ok());
  EXPECT_FALSE(file->GetBool("llama.block_count").ok());
  EXPECT_FALSE(file->GetStringArray("tokenizer.ggml.scores").ok());
  EXPECT_FALSE(file->GetFloatArray("tokenizer.ggml.tokens").ok());
  EXPECT_FALSE(file->GetIntArray("tokenizer.ggml.scores").ok());
  EXPECT_TRUE(
      Contains(file->GetIntArray("tokenizer.ggml.scores").status().message(), "array<float32>"));
}

TEST(GgufStories, TensorTable) {
  LOWBIT_REQUIRE_FILE(StoriesPath());
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  // token_embd, output_norm, output + 9 per block x 5 blocks.
  ASSERT_EQ(file->tensors().size(), 48u);
  EXPECT_EQ(file->data_offset(), 14176u);  // gguf-py: token_embd.weight data_offset
  const GgufTensor& embd = file->tensors()[0];
  EXPECT_EQ(embd.name, "token_embd.weight");
  EXPECT_EQ(embd.dims, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd.rows, 512);
  EXPECT_EQ(embd.cols, 64);
  EXPECT_EQ(embd.ggml_type, 0u);
  EXPECT_EQ(embd.offset, 0u);
  EXPECT_EQ(embd.n_bytes, 131072u);
  ASSERT_NE(embd.format, nullptr);
  EXPECT_EQ(embd.format->spec(), "float:type=f32");

  struct Shape {
    const char* name;
    std::vector<int64_t> dims;
    uint64_t file_offset;  // absolute, from gguf-py
  };
  for (const Shape& s :
       {Shape{"output_norm.weight", {64}, 145248}, Shape{"output.weight", {64, 512}, 145504},
        Shape{"blk.0.attn_k.weight", {64, 32}, 292960},
        Shape{"blk.2.ffn_down.weight", {172, 64}, 733536},
        Shape{"blk.3.ffn_gate.weight", {64, 172}, 871264},
        Shape{"blk.4.ffn_norm.weight", {64}, 1185120}}) {
    const GgufTensor* t = file->FindTensor(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->dims, s.dims) << s.name;
    EXPECT_EQ(t->cols, s.dims[0]);
    EXPECT_EQ(t->rows, s.dims.size() > 1 ? s.dims[1] : 1);
    EXPECT_EQ(file->data_offset() + t->offset, s.file_offset) << s.name;
    EXPECT_EQ(t->n_bytes, static_cast<uint64_t>(4 * t->rows * t->cols));
  }
  for (int b = 0; b < 5; ++b) {
    for (const char* part : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate",
                             "ffn_down", "ffn_up", "ffn_norm"}) {
      EXPECT_NE(file->FindTensor("blk." + std::to_string(b) + "." + part + ".weight"), nullptr);
    }
  }
  EXPECT_EQ(file->FindTensor("blk.5.attn_q.weight"), nullptr);
}

// The same weights exist in stories260K.bin (llama2.c layout, written independently from the GGUF
// tensors; README): the F32 data must agree bit for bit.
TEST(GgufStories, F32ValuesMatchTheLlama2cCheckpoint) {
  const std::string bin_path = SharedDataPath("stories260K/stories260K.bin");
  LOWBIT_REQUIRE_FILE(StoriesPath());
  LOWBIT_REQUIRE_FILE(bin_path);
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  const std::vector<uint8_t> bin = ReadFileBytes(bin_path);
  // Header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (int32 each).
  int32_t header[7];
  std::memcpy(header, bin.data(), sizeof(header));
  ASSERT_EQ(header[0], 64);
  const int64_t dim = 64, hidden = 172, layers = 5, vocab = 512, kv_dim = 32;
  // Float offsets of the llama2.c tensors: emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
  // rms_final.
  const int64_t emb = 0, rms_att = emb + vocab * dim, wq = rms_att + layers * dim;
  const int64_t wk = wq + layers * dim * dim, wv = wk + layers * kv_dim * dim;
  const int64_t wo = wv + layers * kv_dim * dim, rms_ffn = wo + layers * dim * dim;
  const int64_t w1 = rms_ffn + layers * dim, w2 = w1 + layers * hidden * dim;
  const int64_t w3 = w2 + layers * dim * hidden, rms_final = w3 + layers * hidden * dim;
  auto expect_same = [&](const std::string& name, int64_t float_offset) {
    const GgufTensor* t = file->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    const uint8_t* expected = bin.data() + 28 + 4 * float_offset;
    ASSERT_LE(28 + 4 * float_offset + static_cast<int64_t>(t->n_bytes),
              static_cast<int64_t>(bin.size()));
    EXPECT_EQ(0, std::memcmp(t->data, expected, t->n_bytes)) << name;
  };
  expect_same("token_embd.weight", emb);
  expect_same("output_norm.weight", rms_final);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    expect_same(p + "attn_norm.weight", rms_att + l * dim);
    expect_same(p + "attn_q.weight", wq + l * dim * dim);
    expect_same(p + "attn_k.weight", wk + l * kv_dim * dim);
    expect_same(p + "attn_v.weight", wv + l * kv_dim * dim);
    expect_same(p + "attn_output.weight", wo + l * dim * dim);
    expect_same(p + "ffn_norm.weight", rms_ffn + l * dim);
    expect_same(p + "ffn_gate.weight", w1 + l * hidden * dim);
    expect_same(p + "ffn_down.weight", w2 + l * dim * hidden);
    expect_same(p + "ffn_up.weight", w3 + l * hidden * dim);
  }
  // First values as printed by the gguf Python package; Dequantize goes through the registry.
  const GgufTensor* embd = file->FindTensor("token_embd.weight");
  std::vector<float> row(64);
  embd->format->DequantizeRows(embd->data, embd->rows, embd->cols, 0, 1, row.data());
  EXPECT_FLOAT_EQ(row[0], -0.29474878f);
  EXPECT_FLOAT_EQ(row[1], 0.5618956f);
  EXPECT_FLOAT_EQ(row[2], 0.17542253f);
}

void CopyAll(const GgufFile& file, GgufWriter* w) {
  for (const GgufKeyValue& kv : file.metadata()) w->SetValue(kv.key, kv.value);
  for (const GgufTensor& t : file.tensors()) {
    ASSERT_TRUE(w->AddTensorView(t.name, t.dims, t.format, {t.data, t.n_bytes}).ok()) << t.name;
  }
}

TEST(GgufStories, RewriteIsByteIdentical) {
  LOWBIT_REQUIRE_FILE(StoriesPath());
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  GgufWriter w;
  CopyAll(*file, &w);
  auto bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  const std::vector<uint8_t> original = ReadFileBytes(StoriesPath());
  ASSERT_EQ(bytes->size(), original.size());
  EXPECT_TRUE(*bytes == original);
  // The same through the atomic file writer.
  const std::string path = TempPath("stories_rewrite.gguf");
  ASSERT_TRUE(w.WriteAtomic(path).ok());
  EXPECT_TRUE(ReadFileBytes(path) == original);
  std::remove(path.c_str());
}

// Every preset that claims a ggml type id is the format the reader maps that id to: two different
// formats claiming one id would make files ambiguous.
TEST(GgufTypes, EachGgmlIdMapsToOneFormat) {
  int claimed = 0;
  for (const PresetInfo& p : FormatRegistry::Get().presets()) {
    FormatPtr f = Must(p.spec);
    if (!f->gguf_type().has_value()) continue;
    ++claimed;
    FormatPtr mapped = FormatForGgmlType(static_cast<uint32_t>(*f->gguf_type()));
    ASSERT_NE(mapped, nullptr) << p.name;
    EXPECT_EQ(mapped->spec(), f->spec()) << p.name << " claims ggml type " << *f->gguf_type()
                                         << " (" << GgmlTypeName(*f->gguf_type()) << ")";
    EXPECT_NE(GgmlTypeName(*f->gguf_type()).rfind("type ", 0), 0u) << "unnamed id " << p.name;
  }
  EXPECT_GE(claimed, 3);
  EXPECT_EQ(FormatForGgmlType(0)->spec(), "float:type=f32");
  EXPECT_EQ(FormatForGgmlType(1)->spec(), "float:type=f16");
  EXPECT_EQ(FormatForGgmlType(30)->spec(), "float:type=bf16");
  EXPECT_EQ(FormatForGgmlType(kLowbitGgufType), nullptr);
  EXPECT_EQ(FormatForGgmlType(4), nullptr);  // retired Q4_2
  EXPECT_EQ(GgmlTypeName(12), "Q4_K");
  EXPECT_EQ(GgmlTypeName(999), "type 999");
}

// ---------------------------------------------------------------------------------------------
// Write -> read round trips

// UTF-8, a newline and an embedded NUL: strings are length-prefixed bytes.
std::string WeirdString() { return std::string("h\xc3\xa9llo\n\0x", 9); }

GgufValue NestedArray() {
  std::vector<GgufValue> inner;
  inner.push_back(GgufValue::Int32Array(std::vector<int32_t>{1, -2, 3}));
  inner.push_back(GgufValue::StringArray({"x", ""}));
  inner.push_back(GgufValue::ArrayOfArrays({GgufValue::Float32Array(std::vector<float>{0.5f})}));
  return GgufValue::ArrayOfArrays(std::move(inner));
}

std::vector<std::pair<std::string, GgufValue>> EveryValueType() {
  const float nan_payload = [] {
    const uint32_t bits = 0x7fc01234u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }();
  std::vector<uint8_t> u16_bytes = {0x34, 0x12, 0xff, 0xff};  // 0x1234, 0xffff
  return {
      {"t.uint8", GgufValue::Uint8(250)},
      {"t.int8", GgufValue::Int8(-128)},
      {"t.uint16", GgufValue::Uint16(65535)},
      {"t.int16", GgufValue::Int16(-32768)},
      {"t.uint32", GgufValue::Uint32(4000000000u)},
      {"t.int32", GgufValue::Int32(-2000000000)},
      {"t.uint64", GgufValue::Uint64(18446744073709551615ull)},
      {"t.int64", GgufValue::Int64(std::numeric_limits<int64_t>::min())},
      {"t.float32", GgufValue::Float32(-1.5e-7f)},
      {"t.float32_nan", GgufValue::Float32(nan_payload)},
      {"t.float64", GgufValue::Float64(3.141592653589793)},
      {"t.bool", GgufValue::Bool(true)},
      {"t.string", GgufValue::String(WeirdString())},
      {"t.empty_string", GgufValue::String("")},
      {"t.arr_uint8", GgufValue::NumericArray(GgufType::kUint8, std::vector<uint8_t>{0, 255})},
      {"t.arr_uint16", GgufValue::NumericArray(GgufType::kUint16, u16_bytes)},
      {"t.arr_int32", GgufValue::Int32Array(std::vector<int32_t>{-1, 0, 7})},
      {"t.arr_uint32", GgufValue::Uint32Array(std::vector<uint32_t>{4294967295u})},
      {"t.arr_int64", GgufValue::Int64Array(std::vector<int64_t>{-5, 1ll << 60})},
      {"t.arr_float32", GgufValue::Float32Array(std::vector<float>{1.0f, -0.0f, 1e30f})},
      {"t.arr_float64",
       GgufValue::NumericArray(GgufType::kFloat64, std::vector<uint8_t>(16, 0x40))},
      {"t.arr_bool", GgufValue::BoolArray({true, false, true})},
      {"t.arr_string", GgufValue::StringArray({"a", "", "\xe2\x96\x81the"})},
      {"t.arr_empty", GgufValue::Int32Array(std::vector<int32_t>{})},
      {"t.arr_nested", NestedArray()},
  };
}

TEST(GgufRoundTrip, EveryMetadataType) {
  GgufWriter w;
  const auto values = EveryValueType();
  for (const auto& [k, v] : values) w.SetValue(k, v);
  auto bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  auto file = GgufFile::FromBytes(*bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_TRUE(file->tensors().empty());
  ASSERT_EQ(file->metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(file->metadata()[i].key, values[i].first);
    EXPECT_TRUE(file->metadata()[i].value == values[i].second) << values[i].first;
  }
  // Typed access to what was written.
  EXPECT_EQ(V(file->GetInt("t.uint8")), 250);
  EXPECT_EQ(V(file->GetInt("t.int8")), -128);
  EXPECT_EQ(V(file->GetInt("t.int16")), -32768);
  EXPECT_EQ(V(file->GetInt("t.uint32")), 4000000000);
  EXPECT_EQ(V(file->GetInt("t.int64")), std::numeric_limits<int64_t>::min());
  EXPECT_FALSE(file->GetInt("t.uint64").ok()) << "2^64-1 does not fit in int64";
  EXPECT_TRUE(Contains(file->GetInt("t.uint64").status().message(), "does not fit"));
  EXPECT_EQ(V(file->GetFloat("t.float32")), static_cast<double>(-1.5e-7f));
  EXPECT_EQ(V(file->GetFloat("t.float64")), 3.141592653589793);
  EXPECT_EQ(V(file->GetFloat("t.int32")), -2000000000.0);  // integers read as floats too
  EXPECT_TRUE(std::isnan(V(file->GetFloat("t.float32_nan"))));
  EXPECT_EQ(V(file->GetBool("t.bool")), true);
  EXPECT_EQ(V(file->GetString("t.string")), WeirdString());
  EXPECT_EQ(V(file->GetString("t.empty_string")), "");
  EXPECT_EQ(V(file->GetIntArray("t.arr_int32")), (std::vector<int64_t>{-1, 0, 7}));
  EXPECT_EQ(V(file->GetIntArray("t.arr_uint16")), (std::vector<int64_t>{0x1234, 0xffff}));
  EXPECT_EQ(V(file->GetIntArray("t.arr_uint32")), (std::vector<int64_t>{4294967295}));
  EXPECT_EQ(V(file->GetIntArray("t.arr_int64")), (std::vector<int64_t>{-5, 1ll << 60}));
  EXPECT_TRUE(file->GetIntArray("t.arr_empty")->empty());
  auto f32 = file->GetFloatArray("t.arr_float32");
  ASSERT_TRUE(f32.ok());
  ASSERT_EQ(f32->size(), 3u);
  EXPECT_EQ((*f32)[2], 1e30f);
  EXPECT_TRUE(std::signbit((*f32)[1]));
  auto f64 = file->GetFloatArray("t.arr_float64");
  ASSERT_TRUE(f64.ok());
  EXPECT_EQ((*f64)[0], 32.50196078431372f);  // bytes 40 40 40 40 40 40 40 40 = 0x4040404040404040
  auto strs = file->GetStringArray("t.arr_string");
  ASSERT_TRUE(strs.ok());
  ASSERT_EQ(strs->size(), 3u);
  EXPECT_EQ((*strs)[2], "\xe2\x96\x81the");
  const GgufValue* nested = file->Find("t.arr_nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->array_items.size(), 3u);
  EXPECT_EQ(nested->array_items[1].array_strings[0], "x");
  EXPECT_EQ(nested->array_items[2].array_items[0].array_type, GgufType::kFloat32);
  // Re-serializing what was read gives the same bytes.
  GgufWriter again;
  for (const GgufKeyValue& kv : file->metadata()) again.SetValue(kv.key, kv.value);
  EXPECT_TRUE(V(again.Serialize()) == *bytes);
  // DebugString is what `inspect` shows.
  EXPECT_EQ(file->Find("t.uint32")->DebugString(), "uint32 4000000000");
  EXPECT_EQ(file->Find("t.arr_string")->DebugString(2), "array<string>[3] [\"a\", \"\", ...]");
}

// A format that prints a registry spec but claims no ggml type: the writer must store it with the
// lowbit type id and the spec key, and the reader resolve it through the registry.
class NoGgmlTypeFormat final : public Format {
 public:
  explicit NoGgmlTypeFormat(FormatPtr inner) : inner_(std::move(inner)) {}
  std::string spec() const override { return inner_->spec(); }
  std::string_view family() const override { return inner_->family(); }
  int64_t block_size() const override { return inner_->block_size(); }
  int64_t block_bytes() const override { return inner_->block_bytes(); }
  int64_t RowBytes(int64_t cols) const override { return inner_->RowBytes(cols); }
  Status Quantize(const float* x, int64_t rows, int64_t cols, uint8_t* out) const override {
    return inner_->Quantize(x, rows, cols, out);
  }
  void DequantizeRows(const uint8_t* p, int64_t rows, int64_t cols, int64_t b, int64_t e,
                      float* out) const override {
    inner_->DequantizeRows(p, rows, cols, b, e, out);
  }
  void ErrorBound(const float* x, int64_t rows, int64_t cols, float* bound) const override {
    inner_->ErrorBound(x, rows, cols, bound);
  }

 private:
  FormatPtr inner_;
};

TEST(GgufRoundTrip, TensorsOfRegistryFormats) {
  std::mt19937_64 rng(11);
  struct Written {
    std::string name;
    std::vector<int64_t> dims;
    std::string spec;
    std::vector<uint8_t> bytes;
    bool ggml;
  };
  std::vector<Written> written;
  GgufWriter w;
  w.SetString("general.architecture", "test");
  const auto add = [&](const std::string& name, FormatPtr f, std::vector<int64_t> dims) {
    int64_t rows = 1;
    for (size_t d = 1; d < dims.size(); ++d) rows *= dims[d];
    const int64_t cols = dims[0];
    std::vector<float> x = testing::RandomFloats(rng, static_cast<size_t>(rows * cols), 0);
    std::vector<uint8_t> packed(static_cast<size_t>(f->PackedBytes(rows, cols)));
    if (f->can_quantize()) {
      ASSERT_TRUE(f->Quantize(x.data(), rows, cols, packed.data()).ok());
    } else {
      for (auto& b : packed) b = static_cast<uint8_t>(rng());
    }
    ASSERT_TRUE(w.AddTensor(name, dims, f, packed).ok()) << name;
    written.push_back({name, dims, f->spec(), packed, f->gguf_type().has_value()});
  };
  add("f32.3d", Must("f32"), {5, 3, 2});
  add("f16.4d", Must("f16"), {7, 2, 2, 3});
  add("bf16.1d", Must("bf16"), {33});
  add("private.bf16", std::make_shared<NoGgmlTypeFormat>(Must("bf16")), {9, 4});
  written.back().ggml = false;
  // Every registered preset (a block-multiple row so that ggml types are valid), plus a tail row
  // for formats stored with the lowbit type.
  for (const PresetInfo& p : FormatRegistry::Get().presets()) {
    FormatPtr f = Must(p.spec);
    const int64_t b = std::max<int64_t>(f->block_size(), 1);
    add("preset." + p.name, f, {2 * b, 3});
    if (!f->gguf_type().has_value() && b > 1) add("tail." + p.name, f, {b + 1, 2});
  }
  const std::string path = TempPath("formats.gguf");
  ASSERT_TRUE(w.WriteAtomic(path).ok());
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_EQ(file->tensors().size(), written.size());
  for (size_t k = 0; k < written.size(); ++k) {
    const GgufTensor& t = file->tensors()[k];
    const Written& e = written[k];
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(t.dims, e.dims) << e.name;
    ASSERT_NE(t.format, nullptr);
    EXPECT_EQ(t.format->spec(), e.spec) << e.name;
    EXPECT_EQ(t.offset % 32, 0u);
    ASSERT_EQ(t.n_bytes, e.bytes.size()) << e.name;
    EXPECT_EQ(0, std::memcmp(t.data, e.bytes.data(), t.n_bytes)) << e.name;
    if (e.ggml) {
      EXPECT_NE(t.ggml_type, kLowbitGgufType) << e.name;
      EXPECT_EQ(file->Find(std::string(kLowbitTensorFormatKeyPrefix) + e.name), nullptr);
    } else {
      EXPECT_EQ(t.ggml_type, kLowbitGgufType) << e.name;
      EXPECT_EQ(V(file->GetString(std::string(kLowbitTensorFormatKeyPrefix) + e.name)), e.spec);
    }
  }
  EXPECT_EQ(file->FindTensor("f16.4d")->rows, 12);
  EXPECT_EQ(file->FindTensor("f16.4d")->cols, 7);
  EXPECT_EQ(file->FindTensor("f16.4d")->ggml_type, 1u);
  EXPECT_EQ(file->FindTensor("bf16.1d")->ggml_type, 30u);
  // Read -> write -> read again is byte-identical (the lowbit.tensor_format keys are not doubled).
  // The wrapped tensor must be wrapped again: read back, its spec resolves to the registry's bf16,
  // which has a ggml type and would be written as GGUF type 30.
  GgufWriter again;
  for (const GgufKeyValue& kv : file->metadata()) again.SetValue(kv.key, kv.value);
  for (const GgufTensor& t : file->tensors()) {
    FormatPtr f = t.format;
    if (t.name == "private.bf16") f = std::make_shared<NoGgmlTypeFormat>(f);
    ASSERT_TRUE(again.AddTensorView(t.name, t.dims, f, {t.data, t.n_bytes}).ok()) << t.name;
  }
  auto bytes = again.Serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(*bytes == ReadFileBytes(path));
  std::remove(path.c_str());
}

TEST(GgufRoundTrip, CustomAlignment) {
  GgufWriter w;
  w.SetUint32("general.alignment", 64);
  const std::vector<uint8_t> a(4 * 3, 1), b(4 * 5, 2);
  ASSERT_TRUE(w.AddTensor("a", {3}, Must("f32"), a).ok());
  ASSERT_TRUE(w.AddTensor("b", {5}, Must("f32"), b).ok());
  auto bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  auto file = GgufFile::FromBytes(*bytes);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  EXPECT_EQ(file->FindTensor("b")->offset, 64u);  // a (12 bytes) padded to 64
  EXPECT_EQ(bytes->size() % 64, 0u);
}

TEST(GgufWriter, RejectsBadInput) {
  GgufWriter w;
  FormatPtr f32 = Must("f32");
  const std::vector<uint8_t> bytes(16);
  EXPECT_FALSE(w.AddTensor("t", {3}, f32, bytes).ok()) << "16 bytes for 3 floats";
  EXPECT_TRUE(Contains(w.AddTensor("t", {3}, f32, bytes).message(), "needs 12"));
  EXPECT_FALSE(w.AddTensor("t", {}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("t", {2, 1, 1, 1, 1}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("t", {4, 0}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("t", {-4}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("t", {1ll << 40, 1ll << 40}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("", {4}, f32, bytes).ok());
  EXPECT_FALSE(w.AddTensor("t", {4}, nullptr, bytes).ok());
  ASSERT_TRUE(w.AddTensor("t", {4}, f32, bytes).ok());
  EXPECT_TRUE(Contains(w.AddTensor("t", {4}, f32, bytes).message(), "added twice"));

  GgufWriter bad_alignment;
  bad_alignment.SetUint32("general.alignment", 48);
  EXPECT_TRUE(Contains(bad_alignment.Serialize().status().message(), "general.alignment"));
  GgufWriter bad_array;
  GgufValue v = GgufValue::Int32Array(std::vector<int32_t>{1, 2});
  v.array_size = 3;
  bad_array.SetValue("k", v);
  EXPECT_TRUE(Contains(bad_array.Serialize().status().message(), "'k'"));
  GgufWriter bad_bool;
  GgufValue b = GgufValue::Bool(true);
  b.scalar_bits = 2;
  bad_bool.SetValue("flag", b);
  EXPECT_FALSE(bad_bool.Serialize().ok());
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

TEST(GgufWriter, AtomicWriteLeavesNothingOnFailure) {
  const std::string dir = TempPath("atomic_dir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string path = dir + "/model.gguf";
  {
    std::ofstream old(path, std::ios::binary);
    old << "old contents";
  }
  GgufWriter bad;
  GgufValue v = GgufValue::String("x");
  v.type = static_cast<GgufType>(99);
  bad.SetValue("bad", v);
  EXPECT_FALSE(bad.WriteAtomic(path).ok());
  // The old file is untouched and no temporary file is left.
  EXPECT_EQ(ListDir(dir).size(), 3u);  // ".", "..", model.gguf
  const std::vector<uint8_t> old = ReadFileBytes(path);
  EXPECT_EQ(std::string(old.begin(), old.end()), "old contents");
  // A folder that does not exist: IoError, nothing created.
  auto st = GgufWriter().WriteAtomic(dir + "/no/such/folder/x.gguf");
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  // A good write replaces the file.
  GgufWriter good;
  good.SetUint32("k", 1);
  ASSERT_TRUE(good.WriteAtomic(path).ok());
  EXPECT_EQ(ListDir(dir).size(), 3u);
  EXPECT_TRUE(GgufFile::Open(path).ok());
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

// ---------------------------------------------------------------------------------------------
// Malformed files, built byte by byte

class Bytes {
 public:
  Bytes& U8(uint8_t v) { return Raw(&v, 1); }
  Bytes& U32(uint32_t v) { return Raw(&v, 4); }
  Bytes& U64(uint64_t v) { return Raw(&v, 8); }
  Bytes& Str(const std::string& s) {
    U64(s.size());
    return Raw(s.data(), s.size());
  }
  Bytes& Raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& PadTo(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& Zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  Bytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Raw("GGUF", 4);
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  // A uint32 key-value pair.
  Bytes& KvU32(const std::string& key, uint32_t v) {
    Str(key);
    U32(static_cast<uint32_t>(GgufType::kUint32));
    return U32(v);
  }
  // A tensor info: name, dims, type, offset.
  Bytes& Info(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    U32(type);
    return U64(offset);
  }
  std::vector<uint8_t> b;
};

// Expects a failure whose message contains every substring (and the file name).
void ExpectFails(const std::vector<uint8_t>& bytes, std::vector<std::string> substrings,
                 StatusCode code = StatusCode::kDataLoss) {
  auto file = GgufFile::FromBytes(bytes, "bad.gguf");
  ASSERT_FALSE(file.ok()) << "expected failure containing '" << substrings[0] << "'";
  EXPECT_EQ(file.status().code(), code) << file.status().message();
  substrings.push_back("bad.gguf: field '");
  for (const std::string& s : substrings) {
    EXPECT_TRUE(Contains(file.status().message(), s))
        << "message: " << file.status().message() << "\nmissing: " << s;
  }
}

// A small valid file: 3 metadata pairs (string, array<string>, uint32), two f32 tensors.
Bytes SmallValidFile() {
  Bytes f;
  f.Header(2, 3);
  f.Str("general.name").U32(8).Str("tiny");
  f.Str("tok").U32(9).U32(8).U64(2).Str("a").Str("bc");
  f.KvU32("n", 7);
  f.Info("w", {4, 2}, 0, 0);  // 32 bytes
  f.Info("b", {3}, 0, 32);    // 12 bytes
  f.PadTo(32);
  for (int i = 0; i < 11; ++i) f.U32(0x3f800000u);  // 1.0f
  return f;
}

TEST(GgufMalformed, SmallValidFileParses) {
  auto file = GgufFile::FromBytes(SmallValidFile().b);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(V(file->GetString("general.name")), "tiny");
  EXPECT_EQ(file->FindTensor("b")->rows, 1);
}

// Every prefix of the file fails cleanly, except those that still hold all tensor data (the
// file ends 1 byte before the last tensor's end, so every proper prefix must fail).
TEST(GgufMalformed, EveryTruncationFails) {
  const std::vector<uint8_t> full = SmallValidFile().b;
  ASSERT_TRUE(GgufFile::FromBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto file =
        GgufFile::FromBytes(std::vector<uint8_t>(full.begin(), full.begin() + n), "cut.gguf");
    ASSERT_FALSE(file.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << file.status().message();
    EXPECT_TRUE(Contains(file.status().message(), "cut.gguf: field '")) << file.status().message();
  }
  // Also through a real file, including the empty file.
  for (size_t n : {size_t{0}, size_t{3}, size_t{30}, full.size() - 1}) {
    const std::string path = TempPath("cut_" + std::to_string(n) + ".gguf");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(full.data()), n);
    auto file = GgufFile::Open(path);
    ASSERT_FALSE(file.ok()) << n;
    EXPECT_TRUE(Contains(file.status().message(), path)) << file.status().message();
    std::remove(path.c_str());
  }
  EXPECT_EQ(GgufFile::Open(TempPath("missing.gguf")).status().code(), StatusCode::kNotFound);
}

// Random single-byte corruptions never crash (the sanitizer builds check the reads).
TEST(GgufMalformed, RandomCorruptionsDoNotCrash) {
  const std::vector<uint8_t> full = SmallValidFile().b;
  std::mt19937_64 rng(5);
  int failures = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = full;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n; ++k) b[rng() % 200] = static_cast<uint8_t>(rng());
    auto file = GgufFile::FromBytes(std::move(b));
    if (!file.ok()) ++failures;
  }
  EXPECT_GT(failures, 1000);
}

TEST(GgufMalformed, BadMagicAndVersion) {
  Bytes f;
  f.Raw("GGUG", 4).U32(3).U64(0).U64(0);
  ExpectFails(f.b, {"'magic' at offset 0", "47 47 55 47"});
  ExpectFails(Bytes().Header(0, 0, 1).b, {"'version' at offset 4", "v1"},
              StatusCode::kInvalidArgument);
  ExpectFails(Bytes().Header(0, 0, 4).b, {"'version' at offset 4", "unsupported version 4"});
  ExpectFails(Bytes().Header(0, 0, 0x03000000u).b, {"'version'", "big-endian"},
              StatusCode::kInvalidArgument);
  // Version 2 has the same layout as 3.
  auto v2 = GgufFile::FromBytes(Bytes().Header(0, 0, 2).b);
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_EQ(v2->version(), 2u);
}

TEST(GgufMalformed, AbsurdCounts) {
  ExpectFails(Bytes().Header(1ull << 60, 0).b, {"'tensor_count' at offset 8", "cannot fit"});
  ExpectFails(Bytes().Header(0, 1ull << 62).b, {"'metadata_kv_count' at offset 16", "cannot fit"});
  ExpectFails(Bytes().Header(~0ull, ~0ull).b, {"'tensor_count'"});
  // A count that fits the bound but not the content: reading runs out of bytes.
  Bytes f;
  f.Header(0, 2).KvU32("a", 1);
  f.Zeros(14);
  ExpectFails(f.b, {"'metadata[1] key"});
}

TEST(GgufMalformed, HugeStringLengths) {
  Bytes key;
  key.Header(0, 1).U64(1ull << 62).Zeros(20);
  ExpectFails(key.b, {"'metadata[0] key length' at offset 24", "runs past the end"});
  Bytes value;
  value.Header(0, 1).Str("k").U32(8).U64(~0ull).Zeros(8);
  ExpectFails(value.b, {"'k length' at offset 37", "runs past the end"});
  Bytes long_key;
  long_key.Header(0, 1).Str(std::string(70000, 'k')).U32(4).U32(0);
  ExpectFails(long_key.b, {"'metadata[0] key length'", "limit of 65535"});
  Bytes array;
  array.Header(0, 1).Str("arr").U32(9).U32(8).U64(1ull << 61).Zeros(16);
  ExpectFails(array.b, {"'arr element count' at offset 43", "cannot fit"});
  Bytes u64_array;
  u64_array.Header(0, 1).Str("arr").U32(9).U32(10).U64(3).U64(1).U64(2);
  ExpectFails(u64_array.b, {"'arr element count'", "3 elements of uint64"});
  Bytes element;
  element.Header(0, 1).Str("arr").U32(9).U32(8).U64(2).Str("ok").U64(1000).Zeros(4);
  ExpectFails(element.b, {"'arr[1] length'", "runs past the end"});
  Bytes name;
  name.Header(1, 0).U64(1ull << 40).Zeros(40);
  ExpectFails(name.b, {"'tensor[0] name length' at offset 24"});
}

TEST(GgufMalformed, BadValueTypes) {
  Bytes type;
  type.Header(0, 1).Str("k").U32(13).U32(0);
  ExpectFails(type.b, {"'k type' at offset 33", "unknown value type 13"});
  Bytes elem;
  elem.Header(0, 1).Str("k").U32(9).U32(0xffffffffu).U64(0);
  ExpectFails(elem.b, {"'k element type'", "unknown value type 4294967295"});
  Bytes boolean;
  boolean.Header(0, 1).Str("flag").U32(7).U8(2);
  ExpectFails(boolean.b, {"'flag' at offset 40", "bool value 2"});
  Bytes bool_array;
  bool_array.Header(0, 1).Str("flags").U32(9).U32(7).U64(3).U8(1).U8(0).U8(5);
  ExpectFails(bool_array.b, {"'flags[2]'", "bool value 5"});
  // Nested arrays deeper than the limit.
  Bytes deep;
  deep.Header(0, 1).Str("deep").U32(9);
  for (int i = 0; i < kGgufMaxArrayDepth + 2; ++i) deep.U32(9).U64(1);
  deep.Zeros(16);
  ExpectFails(deep.b, {"'deep[0][0][0][0][0][0][0][0]'", "nested deeper"});
  Bytes dup;
  dup.Header(0, 2).KvU32("same", 1).KvU32("same", 2);
  ExpectFails(dup.b, {"'same' at offset 44", "duplicate metadata key"});
  Bytes empty_key;
  empty_key.Header(0, 1).Str("").U32(4).U32(1).Zeros(8);
  ExpectFails(empty_key.b, {"'metadata[0] key'", "empty key"});
}

TEST(GgufMalformed, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Bytes f;
    f.Header(0, 1).KvU32("general.alignment", a);
    ExpectFails(f.b, {"'general.alignment' at offset 24", "not a power of two"});
  }
  Bytes wrong_type;
  wrong_type.Header(0, 1).Str("general.alignment").U32(5).U32(32);
  ExpectFails(wrong_type.b, {"'general.alignment'", "must be uint32, got int32"});
  // A valid non-default alignment moves the data section.
  Bytes ok;
  ok.Header(1, 1).KvU32("general.alignment", 256).Info("t", {2}, 0, 0).PadTo(256).Zeros(8);
  auto file = GgufFile::FromBytes(ok.b);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->data_offset(), 256u);
}

TEST(GgufMalformed, BadDims) {
  const auto one_tensor = [](std::vector<uint64_t> dims) {
    Bytes f;
    f.Header(1, 0).Info("t", std::move(dims), 0, 0).PadTo(32).Zeros(64);
    return f.b;
  };
  ExpectFails(one_tensor({}), {"tensor[0] 't' n_dims' at offset 33", "0 dims"});
  ExpectFails(one_tensor({1, 1, 1, 1, 1}), {"'tensor[0] 't' n_dims'", "5 dims"});
  ExpectFails(one_tensor({4, 0}), {"'tensor[0] 't' dims[1]' at offset 45", "dimension is 0"});
  ExpectFails(one_tensor({1ull << 30, 1ull << 30}), {"'tensor[0] 't' dims[1]'", "exceed 2^50"});
  ExpectFails(one_tensor({~0ull}), {"'tensor[0] 't' dims[0]'", "exceed 2^50"});
  ExpectFails(one_tensor({1ull << 25, 1ull << 25, 1ull << 25}), {"dims[2]'", "exceed 2^50"});
  // Valid dims whose data is not in the file.
  ExpectFails(one_tensor({1ull << 20, 1ull << 20}),
              {"'tensor[0] 't' offset'", "run past the end of the file"});
}

TEST(GgufMalformed, BadTensorTypes) {
  Bytes unknown;
  unknown.Header(1, 0).Info("blk.0.w", {4}, 77, 0).PadTo(32).Zeros(64);
  ExpectFails(unknown.b, {"'tensor[0] 'blk.0.w' type'", "unknown ggml type id 77"});
  // A ggml type lowbit has no format for (if any remains unimplemented).
  for (uint32_t id = 0; id < 64; ++id) {
    if (FormatForGgmlType(id) != nullptr || GgmlTypeName(id).rfind("type ", 0) == 0) continue;
    Bytes known;
    known.Header(1, 0).Info("w", {256}, id, 0).PadTo(32).Zeros(4096);
    ExpectFails(known.b, {"'tensor[0] 'w' type'", "(" + GgmlTypeName(id) + ")", "no lowbit format"},
                StatusCode::kInvalidArgument);
    break;
  }
  // The lowbit type needs its spec key, and a valid spec.
  Bytes no_key;
  no_key.Header(1, 0).Info("q", {4}, kLowbitGgufType, 0).PadTo(32).Zeros(64);
  ExpectFails(no_key.b, {"'tensor[0] 'q' type'", "lowbit.tensor_format.q", "missing"});
  Bytes bad_spec;
  bad_spec.Header(1, 1).Str("lowbit.tensor_format.q").U32(8).Str("float:type=f7");
  bad_spec.Info("q", {4}, kLowbitGgufType, 0).PadTo(32).Zeros(64);
  ExpectFails(bad_spec.b, {"'lowbit.tensor_format.q'", "not a valid format spec", "f7"});
  Bytes good;
  good.Header(1, 1).Str("lowbit.tensor_format.q").U32(8).Str("float:type=bf16");
  good.Info("q", {4}, kLowbitGgufType, 0).PadTo(32).Zeros(8);
  auto file = GgufFile::FromBytes(good.b);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->FindTensor("q")->format->spec(), "float:type=bf16");
  EXPECT_EQ(file->FindTensor("q")->n_bytes, 8u);
}

TEST(GgufMalformed, BadOffsets) {
  const auto two_tensors = [](uint64_t off_a, uint64_t off_b, size_t data_bytes) {
    Bytes f;
    f.Header(2, 0).Info("a", {8}, 0, off_a).Info("b", {8}, 0, off_b).PadTo(32).Zeros(data_bytes);
    return f.b;
  };
  ASSERT_TRUE(GgufFile::FromBytes(two_tensors(0, 32, 64)).ok());
  ASSERT_TRUE(GgufFile::FromBytes(two_tensors(32, 0, 64)).ok()) << "order in the file is free";
  ExpectFails(two_tensors(0, 16, 64),
              {"'tensor[1] 'b' offset'", "not a multiple of the alignment"});
  ExpectFails(two_tensors(0, 0, 64), {"'tensor[1] 'b' offset'", "overlaps tensor 'a'"});
  ExpectFails(two_tensors(0, 64, 64), {"'tensor[1] 'b' offset' at offset 82", "run past the end"});
  ExpectFails(two_tensors(0, ~0ull - 31, 64), {"'tensor[1] 'b' offset'", "run past the end"});
  ExpectFails(two_tensors(1ull << 63, 0, 64), {"'tensor[0] 'a' offset'", "run past the end"});
  Bytes dup;
  dup.Header(2, 0).Info("a", {8}, 0, 0).Info("a", {8}, 0, 32).PadTo(32).Zeros(64);
  ExpectFails(dup.b, {"'tensor[1] name'", "duplicate tensor name 'a'"});
  // The data section itself starts past the end of the file.
  Bytes no_data;
  no_data.Header(1, 0).Info("a", {8}, 0, 0);
  ExpectFails(no_data.b, {"'tensor data'", "past the end of the file"});
}

}  // namespace
}  // namespace lowbit
