// Hostile inputs, one table: every parser lowbit exposes to files from strangers (GGUF, GGUF models
// and tokenizer metadata, safetensors, config.json, tokenizer.json, llama2.c checkpoints and
// tokenizers, format specs) gets hand-made malformed inputs - truncations, bad magic, absurd
// counts, out-of-range or overlapping offsets, unknown types, invalid UTF-8, NaN-filled tensors.
// Each row must fail with a non-OK Status whose message names the file (or spec) and the field.
//
// With LOWBIT_HARDENING_TABLE=<path> the test also writes the table of input -> exact message as
// Markdown (docs/hardening.md is generated from it, so the documented messages are the real ones).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/hf_config.h"
#include "lowbit/model.h"
#include "lowbit/safetensors.h"
#include "lowbit/tokenizer.h"
#include "test_support.h"

namespace lowbit {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Byte builders

class Bytes {
 public:
  Bytes& U32(uint32_t v) { return Raw(&v, 4); }
  Bytes& I32(int32_t v) { return Raw(&v, 4); }
  Bytes& U64(uint64_t v) { return Raw(&v, 8); }
  Bytes& F32(float v) { return Raw(&v, 4); }
  Bytes& Str(const std::string& s) {
    U64(s.size());
    return Raw(s.data(), s.size());
  }
  Bytes& Raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& Text(const std::string& s) { return Raw(s.data(), s.size()); }
  Bytes& PadTo(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& Zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  // GGUF header.
  Bytes& Gguf(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Raw("GGUF", 4);
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  Bytes& KvU32(const std::string& key, uint32_t v) {
    Str(key);
    U32(static_cast<uint32_t>(GgufType::kUint32));
    return U32(v);
  }
  Bytes& Info(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
              uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    U32(type);
    return U64(offset);
  }
  std::vector<uint8_t> b;
};

std::vector<uint8_t> Cut(std::vector<uint8_t> v, size_t n) {
  v.resize(n);
  return v;
}

// Valid GGUF: one metadata pair, two f32 tensors "w" (2 x 4) at 0 and "b" (3) at 32.
Bytes SmallGguf() {
  Bytes f;
  f.Gguf(2, 1);
  f.KvU32("n", 7);
  f.Info("w", {4, 2}, 0, 0);
  f.Info("b", {3}, 0, 32);
  f.PadTo(32);
  for (int i = 0; i < 11; ++i) f.F32(1.0f);
  return f;
}

// safetensors with the given JSON header (padded to 8 bytes) and data bytes.
std::vector<uint8_t> St(const std::string& header, size_t data_bytes) {
  Bytes f;
  std::string h = header;
  while (h.size() % 8) h.push_back(' ');
  f.U64(h.size()).Text(h).Zeros(data_bytes);
  return f.b;
}

// A tiny llama GGUF model written with GgufWriter (dim 8, 1 layer, 2 heads, 1 KV head, vocab 16,
// f32), with a SentencePiece vocabulary; `tweak` edits metadata or values before tensors are added.
struct TinyModelOptions {
  std::function<void(GgufWriter&)> metadata;
  float norm_value = 1.0f;    // every element of blk.0.attn_norm.weight
  float weight_value = 0.1f;  // every element of blk.0.attn_q.weight
  bool drop_ffn_down = false;
  bool wrong_q_shape = false;
};
std::vector<uint8_t> TinyModel(const TinyModelOptions& o = {}) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.embedding_length", 8);
  w.SetUint32("llama.feed_forward_length", 16);
  w.SetUint32("llama.block_count", 1);
  w.SetUint32("llama.attention.head_count", 2);
  w.SetUint32("llama.attention.head_count_kv", 1);
  w.SetUint32("llama.context_length", 16);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int i = 3; i < 16; ++i) tokens.push_back(std::string(1, char('a' + i)));
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetFloat32Array("tokenizer.ggml.scores", std::vector<float>(16, 0.0f));
  if (o.metadata) o.metadata(w);
  const FormatPtr f32 = *ParseFormat("f32");
  auto add = [&](const std::string& name, std::vector<int64_t> dims, float value) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> v(static_cast<size_t>(n), value);
    EXPECT_TRUE(w.AddTensor(name, dims, f32,
                            {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4})
                    .ok());
  };
  add("token_embd.weight", {8, 16}, 0.01f);
  add("blk.0.attn_norm.weight", {8}, o.norm_value);
  add("blk.0.attn_q.weight", {8, o.wrong_q_shape ? 7 : 8}, o.weight_value);
  add("blk.0.attn_k.weight", {8, 4}, 0.1f);
  add("blk.0.attn_v.weight", {8, 4}, 0.1f);
  add("blk.0.attn_output.weight", {8, 8}, 0.1f);
  add("blk.0.ffn_norm.weight", {8}, 1.0f);
  add("blk.0.ffn_gate.weight", {8, 16}, 0.1f);
  add("blk.0.ffn_up.weight", {8, 16}, 0.1f);
  if (!o.drop_ffn_down) add("blk.0.ffn_down.weight", {16, 8}, 0.1f);
  add("output_norm.weight", {8}, 1.0f);
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status().message();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

// GGUF metadata only (no tensors) for tokenizer rows.
std::vector<uint8_t> TokenizerGguf(const std::function<void(GgufWriter&)>& fill) {
  GgufWriter w;
  fill(w);
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status().message();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}
void SpmTokens(GgufWriter& w, size_t n = 4) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "c"};
  tokens.resize(n);
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
}
void BpeTokens(GgufWriter& w, std::vector<std::string> merges, const std::string& pre) {
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetStringArray("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.SetStringArray("tokenizer.ggml.merges", std::move(merges));
  w.SetString("tokenizer.ggml.pre", pre);
}

// llama2.c checkpoint: header, then `floats` f32 values (all `value`).
std::vector<uint8_t> Llama2c(std::vector<int32_t> header, size_t floats, float value = 0.1f) {
  Bytes f;
  for (int32_t h : header) f.I32(h);
  for (size_t i = 0; i < floats; ++i) f.F32(value);
  return f.b;
}
// Floats a llama2.c model with dim 8, hidden 16, 1 layer, 2 heads, 1 KV head, vocab 4, seq 2 needs.
constexpr size_t kTinyLlama2cFloats = 4 * 8 + 8 + 64 + 2 * 32 + 64 + 8 + 3 * 128 + 8 + 2 * 4;
const std::vector<int32_t> kTinyLlama2cHeader = {8, 16, 1, 2, 1, 4, 2};

// llama2.c tokenizer: max_token_length, then (score, length, bytes) records.
std::vector<uint8_t> Llama2cTok(int32_t max_len, std::vector<std::pair<float, std::string>> tokens) {
  Bytes f;
  f.I32(max_len);
  for (const auto& [score, piece] : tokens) {
    f.F32(score).I32(static_cast<int32_t>(piece.size())).Text(piece);
  }
  return f.b;
}

std::string Json(const std::string& model, const std::string& rest = "") {
  return R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},)" +
         rest + R"( "model": )" + model + "}";
}

// ---------------------------------------------------------------------------------------------
// Entry points (the ones the loaders and the fuzzers use)

Status ParseGguf(const std::vector<uint8_t>& b) {
  return GgufFile::FromBytes(b, "bad.gguf").status();
}
Status LoadGgufModel(const std::vector<uint8_t>& b) {
  Result<GgufFile> f = GgufFile::FromBytes(b, "bad.gguf");
  if (!f.ok()) return f.status();
  return LoadFromGguf(std::make_shared<const GgufFile>(std::move(f).value())).status();
}
Status GgufTokenizer(const std::vector<uint8_t>& b) {
  Result<GgufFile> f = GgufFile::FromBytes(b, "bad.gguf");
  if (!f.ok()) return f.status();
  return TokenizerFromGguf(*f).status();
}
Status ParseSafetensors(const std::vector<uint8_t>& b) {
  return SafetensorsFile::FromBytes(b, "bad.safetensors").status();
}
Status ParseConfig(const std::string& text) { return ParseHfConfig(text, "config.json").status(); }
Status ParseTokenizerJson(const std::string& text) {
  return TokenizerFromHfJsonText(text, "", "tokenizer.json").status();
}
Status LoadLlama2c(const std::vector<uint8_t>& b) {
  return LoadLlama2cFromBytes(b, "bad.bin").status();
}
Status Llama2cTokenizer(const std::vector<uint8_t>& b, int32_t vocab = -1) {
  const std::string bytes(b.begin(), b.end());
  return TokenizerFromLlama2cBytes(bytes, "tok.bin", vocab).status();
}
Status Spec(const std::string& spec) { return ParseFormat(spec).status(); }

// ---------------------------------------------------------------------------------------------
// The table

struct Row {
  std::string parser;                 // which reader
  std::string input;                  // what is wrong with the input
  std::function<Status()> run;        // feeds it through the public entry point
  std::vector<std::string> expected;  // substrings of the message: the file and the field
};

std::vector<Row> Rows() {
  std::vector<Row> rows;
  auto gguf = [&](std::string input, std::vector<uint8_t> b, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "bad.gguf");
    rows.push_back({"GGUF", std::move(input), [b] { return ParseGguf(b); }, std::move(expected)});
  };
  const std::vector<uint8_t> small = SmallGguf().b;
  gguf("empty file (0 bytes)", {}, {"field 'magic'", "too short"});
  gguf("truncated inside the magic (3 bytes)", Cut(small, 3), {"field 'magic'"});
  gguf("truncated inside the version (6 bytes)", Cut(small, 6), {"field 'version'", "truncated"});
  gguf("truncated inside tensor_count (12 bytes)", Cut(small, 12), {"field 'tensor_count'"});
  {
    Bytes f;
    f.Gguf(0, 1).Str(std::string(40, 'k')).U32(4).U32(1);
    gguf("truncated inside a metadata key (52 bytes)", Cut(f.b, 52),
         {"field 'metadata[0] key length'", "runs past the end"});
  }
  {
    Bytes f;
    f.Gguf(1, 0).Info(std::string(60, 't'), {8}, 0, 0).PadTo(32).Zeros(32);
    gguf("truncated inside a tensor name (62 bytes)", Cut(f.b, 62),
         {"field 'tensor[0] name length'", "runs past the end"});
  }
  gguf("truncated 1 byte before the end of the tensor data", Cut(small, small.size() - 1),
       {"tensor[1] 'b' offset", "run past the end"});
  {
    Bytes f;
    f.Raw("GGML", 4).U32(3).U64(0).U64(0);
    gguf("bad magic \"GGML\"", f.b, {"field 'magic'", "expected \"GGUF\""});
  }
  gguf("version 0", Bytes().Gguf(0, 0, 0).b, {"field 'version'", "unsupported version 0"});
  gguf("version 99", Bytes().Gguf(0, 0, 99).b, {"field 'version'", "unsupported version 99"});
  gguf("version 1 (32-bit counts)", Bytes().Gguf(0, 0, 1).b, {"field 'version'", "v1"});
  gguf("big-endian version", Bytes().Gguf(0, 0, 0x03000000u).b, {"field 'version'", "big-endian"});
  gguf("absurd tensor count (2^62)", Bytes().Gguf(uint64_t{1} << 62, 0).b,
       {"field 'tensor_count'", "cannot fit"});
  gguf("absurd metadata KV count (2^62)", Bytes().Gguf(0, uint64_t{1} << 62).b,
       {"field 'metadata_kv_count'", "cannot fit"});
  {
    Bytes f;
    f.Gguf(0, 1).U64(uint64_t{1} << 40).Zeros(16);
    gguf("key length 2^40, beyond the file", f.b, {"field 'metadata[0] key length'", "runs past"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("s").U32(8).U64(1000).Text("abc");
    gguf("string value length 1000 in a 50-byte file", f.b, {"field 's length'", "runs past"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("a").U32(9).U32(4).U64(uint64_t{1} << 61).Zeros(8);
    gguf("array of 2^61 uint32 elements", f.b, {"field 'a element count'", "cannot fit"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("k").U32(13).U32(0);
    gguf("unknown metadata value type 13", f.b, {"field 'k type'", "unknown value type 13"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("k").U32(7).Raw("\x02", 1);
    gguf("bool value 2", f.b, {"field 'k'", "not 0 or 1"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("k").U32(9);
    for (int d = 0; d < 9; ++d) f.U32(9).U64(1);
    f.U32(4).U64(0);
    gguf("arrays nested 9 deep", f.b, {"field 'k", "nested deeper than 8"});
  }
  {
    Bytes f;
    f.Gguf(0, 2).KvU32("k", 1).KvU32("k", 2);
    gguf("duplicate metadata key", f.b, {"field 'k'", "duplicate metadata key"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).KvU32("general.alignment", 24);
    gguf("general.alignment = 24 (not a power of two)", f.b,
         {"field 'general.alignment'", "not a power of two"});
  }
  {
    Bytes f;
    f.Gguf(0, 1).Str("general.alignment").U32(8).Str("32");
    gguf("general.alignment is a string", f.b, {"field 'general.alignment'", "must be uint32"});
  }
  auto one_tensor = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                       size_t data_bytes) {
    Bytes f;
    f.Gguf(1, 0).Info("t", dims, type, offset).PadTo(32).Zeros(data_bytes);
    return f.b;
  };
  gguf("tensor with 0 dims", one_tensor({}, 0, 0, 32), {"field 'tensor[0] 't' n_dims'", "0 dims"});
  gguf("tensor with 5 dims", one_tensor({1, 1, 1, 1, 1}, 0, 0, 32),
       {"field 'tensor[0] 't' n_dims'", "5 dims"});
  gguf("a dimension of 0 (zero element count)", one_tensor({4, 0}, 0, 0, 32),
       {"field 'tensor[0] 't' dims[1]'", "dimension is 0"});
  gguf("dims 2^40 x 2^40 (element count overflows)",
       one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 32),
       {"field 'tensor[0] 't' dims[1]'", "exceed 2^50"});
  gguf("dim 2^64 - 1", one_tensor({~uint64_t{0}}, 0, 0, 32),
       {"field 'tensor[0] 't' dims[0]'", "exceed 2^50"});
  gguf("unknown ggml type 999", one_tensor({8}, 999, 0, 32),
       {"field 'tensor[0] 't' type'", "unknown ggml type id 999"});
  gguf("q4_0 (type 2) row of 30, not a multiple of the 32-block", one_tensor({30}, 2, 0, 32),
       {"field 'tensor[0] 't' dims[0]'", "not a multiple"});
  gguf("lowbit type 1024 without its format key", one_tensor({8}, kLowbitGgufType, 0, 32),
       {"field 'tensor[0] 't' type'", "lowbit.tensor_format.t"});
  {
    Bytes f;
    f.Gguf(1, 1).Str("lowbit.tensor_format.t").U32(8).Str("int:bits=99");
    f.Info("t", {8}, kLowbitGgufType, 0).PadTo(32).Zeros(32);
    gguf("lowbit type 1024 with an invalid format spec", f.b,
         {"lowbit.tensor_format.t", "not a valid format spec", "bits"});
  }
  gguf("tensor offset beyond the file", one_tensor({8}, 0, 4096, 32),
       {"field 'tensor[0] 't' offset'", "run past the end"});
  gguf("tensor offset 2^64 - 32 (offset + size overflows)", one_tensor({8}, 0, ~uint64_t{31}, 32),
       {"field 'tensor[0] 't' offset'", "run past the end"});
  gguf("misaligned tensor offset (4)", one_tensor({8}, 0, 4, 64),
       {"field 'tensor[0] 't' offset'", "not a multiple of the alignment 32"});
  {
    Bytes f;
    f.Gguf(2, 0).Info("a", {16}, 0, 0).Info("b", {16}, 0, 32).PadTo(32).Zeros(128);
    gguf("overlapping tensor data ([0, 64) and [32, 96))", f.b,
         {"field 'tensor[1] 'b' offset'", "overlaps tensor 'a'"});
  }
  {
    Bytes f;
    f.Gguf(2, 0).Info("a", {8}, 0, 0).Info("a", {8}, 0, 32).PadTo(32).Zeros(64);
    gguf("duplicate tensor name", f.b, {"field 'tensor[1] name'", "duplicate tensor name 'a'"});
  }
  {
    Bytes f;
    f.Gguf(1, 0).Info("", {8}, 0, 0).PadTo(32).Zeros(32);
    gguf("empty tensor name", f.b, {"field 'tensor[0] name'", "empty tensor name"});
  }

  // GGUF models: the file parses, the model in it is inconsistent.
  auto model = [&](std::string input, std::vector<uint8_t> b, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "bad.gguf");
    rows.push_back(
        {"GGUF model", std::move(input), [b] { return LoadGgufModel(b); }, std::move(expected)});
  };
  model("head_count = 2^40 (head_count * head_dim would overflow)",
        TinyModel({.metadata = [](GgufWriter& w) {
          w.SetUint64("llama.attention.head_count", uint64_t{1} << 40);
          w.SetUint64("llama.attention.key_length", uint64_t{1} << 40);
        }}),
        {"llama.attention.head_count", "not a size"});
  model("block_count = 0", TinyModel({.metadata = [](GgufWriter& w) {
          w.SetUint32("llama.block_count", 0);
        }}),
        {"llama.block_count", "not a size"});
  model("embedding_length is a string", TinyModel({.metadata = [](GgufWriter& w) {
          w.SetString("llama.embedding_length", "8");
        }}),
        {"llama.embedding_length", "expected an integer"});
  model("general.architecture = 'bert'", TinyModel({.metadata = [](GgufWriter& w) {
          w.SetString("general.architecture", "bert");
        }}),
        {"general.architecture", "bert"});
  model("missing tensor blk.0.ffn_down.weight", TinyModel({.drop_ffn_down = true}),
        {"blk.0.ffn_down.weight", "not found"});
  model("attn_q of shape (7, 8) instead of (8, 8)", TinyModel({.wrong_q_shape = true}),
        {"blk.0.attn_q.weight", "expected (rows 8, cols 8)"});
  model("NaN-filled norm tensor", TinyModel({.norm_value = kNaN}),
        {"blk.0.attn_norm.weight", "element 0 is NaN"});
  model("Inf in a norm tensor", TinyModel({.norm_value = std::numeric_limits<float>::infinity()}),
        {"blk.0.attn_norm.weight", "infinite"});

  // GGUF tokenizer metadata.
  auto gtok = [&](std::string input, std::vector<uint8_t> b, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "bad.gguf");
    rows.push_back(
        {"GGUF tokenizer", std::move(input), [b] { return GgufTokenizer(b); }, std::move(expected)});
  };
  gtok("no tokenizer.ggml.model", TokenizerGguf([](GgufWriter& w) { w.SetUint32("x", 1); }),
       {"tokenizer.ggml.model", "not found"});
  gtok("tokenizer.ggml.model = 'bert'", TokenizerGguf([](GgufWriter& w) {
         SpmTokens(w);
         w.SetString("tokenizer.ggml.model", "bert");
       }),
       {"tokenizer.ggml.model", "not supported"});
  gtok("empty token list", TokenizerGguf([](GgufWriter& w) {
         w.SetString("tokenizer.ggml.model", "llama");
         w.SetStringArray("tokenizer.ggml.tokens", {});
       }),
       {"tokenizer.ggml.tokens is empty"});
  gtok("tokens is a uint32", TokenizerGguf([](GgufWriter& w) {
         w.SetString("tokenizer.ggml.model", "llama");
         w.SetUint32("tokenizer.ggml.tokens", 5);
       }),
       {"tokenizer.ggml.tokens", "expected array<string>"});
  gtok("3 scores for 4 tokens", TokenizerGguf([](GgufWriter& w) {
         SpmTokens(w);
         w.SetFloat32Array("tokenizer.ggml.scores", std::vector<float>{0, 0, 0});
       }),
       {"tokenizer.ggml.scores has 3 entries"});
  gtok("NaN score", TokenizerGguf([](GgufWriter& w) {
         SpmTokens(w);
         w.SetFloat32Array("tokenizer.ggml.scores", std::vector<float>{0, 0, 0, kNaN});
       }),
       {"score of token 3 is not finite"});
  gtok("token_type 7", TokenizerGguf([](GgufWriter& w) {
         SpmTokens(w);
         w.SetInt32Array("tokenizer.ggml.token_type", std::vector<int32_t>{1, 1, 1, 7});
       }),
       {"tokenizer.ggml.token_type[3] = 7", "not a token type"});
  gtok("bos_token_id 4 of 4 tokens", TokenizerGguf([](GgufWriter& w) {
         SpmTokens(w);
         w.SetUint32("tokenizer.ggml.bos_token_id", 4);
       }),
       {"tokenizer.ggml.bos_token_id = 4", "outside the vocabulary"});
  gtok("gpt2 merge 'a c' names a piece not in the vocabulary",
       TokenizerGguf([](GgufWriter& w) { BpeTokens(w, {"a c"}, "gpt-2"); }),
       {"tokenizer.ggml.merges[0]", "'c' is not in the vocabulary"});
  gtok("gpt2 merge without a space", TokenizerGguf([](GgufWriter& w) { BpeTokens(w, {"ab"}, "gpt-2"); }),
       {"tokenizer.ggml.merges[0] = 'ab'", "not 'left right'"});
  gtok("gpt2 with an unknown pre-tokenizer",
       TokenizerGguf([](GgufWriter& w) { BpeTokens(w, {"a b"}, "mystery"); }),
       {"tokenizer.ggml.pre = 'mystery'", "not supported"});

  // safetensors.
  auto st = [&](std::string input, std::vector<uint8_t> b, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "bad.safetensors");
    rows.push_back(
        {"safetensors", std::move(input), [b] { return ParseSafetensors(b); }, std::move(expected)});
  };
  const std::string f32x2 = R"("dtype": "F32", "shape": [2])";
  st("file of 5 bytes", {1, 2, 3, 4, 5}, {"field 'header length'", "too short"});
  st("header length beyond the file", Bytes().U64(1000).Text("{}").b,
     {"field 'header length'", "runs past the end"});
  st("header length 2^63", Bytes().U64(uint64_t{1} << 63).Text("{}").b,
     {"field 'header length'", "exceeds the 100 MB limit"});
  st("header is a JSON array", St("[]", 0), {"field 'header'", "must be an object"});
  st("header is invalid JSON", St(R"({"a": )", 0), {"field 'header'", "invalid JSON"});
  st("header with invalid UTF-8 in a name", St("{\"\xff\": 1}", 0),
     {"field 'header'", "invalid JSON"});
  st("header nested 100 deep", St("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", 0),
     {"field 'header'", "nested deeper than 16"});
  st("unknown dtype \"F7\"", St(R"({"t": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}})", 8),
     {"field 't.dtype'", "unknown dtype \"F7\""});
  st("negative dimension", St(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8),
     {"field 't.shape[0]'", "non-negative integer"});
  st("shape whose element count overflows",
     St(R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8),
     {"field 't.shape[1]'", "exceed 2^50"});
  st("data_offsets reversed", St(R"({"t": {)" + f32x2 + R"(, "data_offsets": [8, 0]}})", 8),
     {"field 't.data_offsets'", "end 0 is before begin 8"});
  st("data_offsets beyond the data", St(R"({"t": {)" + f32x2 + R"(, "data_offsets": [0, 4096]}})", 8),
     {"field 't.data_offsets'", "past the end of the data"});
  st("data_offsets with a negative number",
     St(R"({"t": {)" + f32x2 + R"(, "data_offsets": [-8, 0]}})", 8),
     {"field 't.data_offsets'", "non-negative integers"});
  st("overlapping tensors",
     St(R"({"a": {)" + f32x2 + R"(, "data_offsets": [0, 8]}, "b": {)" + f32x2 +
            R"(, "data_offsets": [4, 12]}})",
        12),
     {"field 'b.data_offsets'", "overlaps the previous tensor"});
  st("hole between tensors",
     St(R"({"a": {)" + f32x2 + R"(, "data_offsets": [0, 8]}, "b": {)" + f32x2 +
            R"(, "data_offsets": [12, 20]}})",
        20),
     {"field 'b.data_offsets'", "leaves a hole"});
  st("shape/bytes mismatch (2 F32 in 12 bytes)",
     St(R"({"t": {)" + f32x2 + R"(, "data_offsets": [0, 12]}})", 12),
     {"field 't.data_offsets'", "F32 2 elements need 8"});
  st("bytes after the last tensor", St(R"({"t": {)" + f32x2 + R"(, "data_offsets": [0, 8]}})", 16),
     {"field 'data'", "belong to none"});
  st("empty tensor name", St(R"({"": {)" + f32x2 + R"(, "data_offsets": [0, 8]}})", 8),
     {"empty tensor name"});
  st("__metadata__ value is a number", St(R"({"__metadata__": {"k": 1}})", 0),
     {"field '__metadata__.k'", "must be strings"});

  // config.json.
  const std::string base =
      R"("intermediate_size": 8, "num_hidden_layers": 1, "vocab_size": 4, "num_attention_heads": 2)";
  auto cfg = [&](std::string input, std::string text, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "config.json");
    rows.push_back(
        {"config.json", std::move(input), [text] { return ParseConfig(text); }, std::move(expected)});
  };
  cfg("invalid JSON", R"({"hidden_size": )", {"invalid JSON"});
  cfg("invalid UTF-8 in a string", "{\"model_type\": \"\xc3\x28\"}", {"invalid JSON"});
  cfg("a JSON array", "[1, 2]", {"expected a JSON object"});
  cfg("hidden_size missing", "{" + base + "}", {"field 'hidden_size': missing"});
  cfg("hidden_size = -64", "{" + base + R"(, "hidden_size": -64})",
      {"field 'hidden_size'", "positive integer"});
  cfg("hidden_size = 2^40", "{" + base + R"(, "hidden_size": 1099511627776})",
      {"field 'hidden_size'", "exceeds the limit of 2147483647"});
  cfg("hidden_size = 6.5", "{" + base + R"(, "hidden_size": 6.5})",
      {"field 'hidden_size'", "positive integer"});
  cfg("heads do not divide hidden_size", "{" + base + R"(, "hidden_size": 7})",
      {"field 'num_attention_heads'", "do not divide hidden_size 7"});
  cfg("rope_scaling without a type", "{" + base + R"(, "hidden_size": 8, "rope_scaling": {"factor": 2}})",
      {"field 'rope_scaling.rope_type'"});
  cfg("a value nested 100000 deep (2 x 100 KB of brackets)",
      R"({"hidden_size": )" + std::string(100000, '[') + std::string(100000, ']') + "}",
      {"nested deeper than 64"});
  cfg("rms_norm_eps = 0", "{" + base + R"(, "hidden_size": 8, "rms_norm_eps": 0})",
      {"field 'rms_norm_eps'"});

  // tokenizer.json.
  auto tj = [&](std::string input, std::string text, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "tokenizer.json");
    rows.push_back({"tokenizer.json", std::move(input), [text] { return ParseTokenizerJson(text); },
                    std::move(expected)});
  };
  tj("invalid JSON", "{\"model\": ", {"not valid JSON"});
  tj("invalid UTF-8 in a token", Json("{\"type\": \"BPE\", \"vocab\": {\"\xff\": 0}, \"merges\": []}"),
     {"not valid JSON", "UTF-8"});
  tj("no model", R"({"normalizer": null})", {"no 'model' object"});
  tj("normalizer nested 100000 deep",
     R"({"normalizer": )" + std::string(100000, '[') + std::string(100000, ']') + "}",
     {"nested deeper than 64"});
  tj("model.type WordPiece", Json(R"({"type": "WordPiece", "vocab": {"a": 0}})"),
     {"model.type = 'WordPiece'", "not supported"});
  tj("vocab is a list", Json(R"({"type": "BPE", "vocab": ["a"], "merges": []})"),
     {"model.vocab is not an object"});
  tj("id used twice", Json(R"({"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []})"),
     {"model.vocab: id 0 is used twice"});
  tj("ids with a gap", Json(R"({"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []})"),
     {"token id 1 is missing"});
  tj("negative id", Json(R"({"type": "BPE", "vocab": {"a": -1}, "merges": []})"),
     {"model.vocab['a'] is not a valid id"});
  tj("merge of a piece not in the vocabulary",
     Json(R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]})"),
     {"model.merges[0]", "'c' is not in the vocabulary"});
  tj("merge that is a number", Json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [5]})"),
     {"model.merges[0] = 5", "is not 'left right'"});
  tj("added token with a negative id",
     Json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": []})",
          R"( "added_tokens": [{"id": -3, "content": "x"}],)"),
     {"added_tokens[0]", "expected {id, content}"});
  tj("model.vocab values are strings", Json(R"({"type": "BPE", "vocab": {"a": "0"}, "merges": []})"),
     {"model.vocab['a'] is not a valid id"});

  // llama2.c checkpoints.
  auto l2c = [&](std::string input, std::vector<uint8_t> b, std::vector<std::string> expected) {
    expected.insert(expected.begin(), "bad.bin");
    rows.push_back(
        {"llama2.c", std::move(input), [b] { return LoadLlama2c(b); }, std::move(expected)});
  };
  l2c("file of 20 bytes (header is 28)", std::vector<uint8_t>(20, 0), {"too short"});
  l2c("negative dim", Llama2c({-8, 16, 1, 2, 1, 4, 2}, 0), {"header field dim = -8"});
  l2c("n_layers = 0", Llama2c({8, 16, 0, 2, 1, 4, 2}, 0), {"header field n_layers = 0"});
  l2c("dim = 2^30", Llama2c({1 << 30, 16, 1, 2, 1, 4, 2}, 0), {"header field dim", "plausible"});
  l2c("dim not a multiple of n_heads", Llama2c({8, 16, 1, 3, 1, 4, 2}, 0),
      {"dim = 8 is not a multiple of n_heads = 3"});
  l2c("n_heads not a multiple of n_kv_heads", Llama2c({8, 16, 1, 2, 3, 4, 2}, 0),
      {"n_heads = 2 is not a multiple of n_kv_heads = 3"});
  l2c("file shorter than its weights", Llama2c(kTinyLlama2cHeader, kTinyLlama2cFloats - 1),
      {"bytes, but the llama2.c header", "implies"});
  l2c("file longer than its weights", Llama2c(kTinyLlama2cHeader, kTinyLlama2cFloats + 1),
      {"bytes, but the llama2.c header", "implies"});
  l2c("sizes near 2^24 (the implied file size overflows 64 bits)",
      Llama2c({(1 << 24) - 2, (1 << 24) - 1, (1 << 24) - 1, 1, 1, (1 << 24) - 1, (1 << 24) - 1}, 4),
      {"implies more than 2^64"});
  l2c("NaN-filled tensors", Llama2c(kTinyLlama2cHeader, kTinyLlama2cFloats, kNaN),
      {"tensor 'rms_att[0]' element 0 is NaN"});

  // llama2.c tokenizers.
  auto l2t = [&](std::string input, std::vector<uint8_t> b, int32_t vocab,
                 std::vector<std::string> expected) {
    expected.insert(expected.begin(), "tok.bin");
    rows.push_back({"llama2.c tokenizer", std::move(input),
                    [b, vocab] { return Llama2cTokenizer(b, vocab); }, std::move(expected)});
  };
  const std::vector<std::pair<float, std::string>> three = {{0, "<unk>"}, {0, "<s>"}, {0, "</s>"}};
  l2t("empty file", {}, -1, {"no max_token_length"});
  l2t("max_token_length = 0", Llama2cTok(0, three), -1, {"max_token_length = 0"});
  l2t("max_token_length = 2^31 - 1", Llama2cTok(INT32_MAX, three), -1,
      {"max_token_length = 2147483647", "is not in [1, 65536]"});
  {
    Bytes f;
    f.I32(8).F32(0).I32(-5);
    l2t("negative token length", f.b, -1, {"token 0", "length = -5"});
  }
  {
    Bytes f;
    f.I32(8).F32(0).I32(6).Text("ab");
    l2t("token text cut short", f.b, -1, {"token 0", "truncated: 6 bytes of text expected"});
  }
  {
    Bytes f;
    f.I32(8).F32(0).I32(1).Text("a").F32(0);
    l2t("record header cut short", f.b, -1, {"token 1", "truncated record header"});
  }
  l2t("token longer than max_token_length", Llama2cTok(2, {{0, "<unk>"}}), -1,
      {"token 0", "length = 5 is not in [0, max_token_length = 2]"});
  l2t("2 tokens (llama2.c needs <unk>, BOS, EOS)", Llama2cTok(8, {{0, "a"}, {0, "b"}}), -1,
      {"holds 2 tokens"});
  l2t("NaN score", Llama2cTok(8, {{0, "<unk>"}, {0, "<s>"}, {kNaN, "</s>"}}), -1,
      {"score of token 2 is not finite"});
  l2t("3 tokens for the model's vocab_size 512", Llama2cTok(8, three), 512,
      {"holds 3 tokens, the model's vocab_size is 512"});
  l2t("bytes after the vocabulary", Llama2cTok(8, three), 2, {"unexpected bytes after the last"});

  // Format specs (CLI --format, GGUF lowbit.tensor_format.* keys).
  auto spec = [&](std::string input, std::string text, std::vector<std::string> expected) {
    rows.push_back({"format spec", std::move(input), [text] { return Spec(text); }, std::move(expected)});
  };
  spec("empty spec", "", {"unknown format ''"});
  spec("unknown family \"foo:bits=4\"", "foo:bits=4", {"foo"});
  spec("unknown key \"int:bitz=4\"", "int:bitz=4", {"bitz"});
  spec("value out of range \"int:bits=99\"", "int:bits=99", {"bits", "99"});
  spec("missing value \"int:bits\"", "int:bits", {"bits"});
  spec("invalid UTF-8 \"int:bits=\\xff\"", "int:bits=\xff", {"bits"});
  return rows;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '|') {
      out += "\\|";
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch < 0x20 || ch >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", ch);
      out += buf;
    } else {
      out.push_back(static_cast<char>(ch));
    }
  }
  return out;
}

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kDataLoss: return "DataLoss";
    case StatusCode::kIoError: return "IoError";
    case StatusCode::kUnimplemented: return "Unimplemented";
    case StatusCode::kInternal: return "Internal";
  }
  return "?";
}

TEST(MalformedInputs, EveryRowFailsWithAMessageNamingFileAndField) {
  const std::vector<Row> rows = Rows();
  ASSERT_GE(rows.size(), 90u);
  std::string table =
      "| parser | malformed input | status | message |\n| --- | --- | --- | --- |\n";
  for (const Row& row : rows) {
    SCOPED_TRACE(row.parser + ": " + row.input);
    const Status st = row.run();
    EXPECT_FALSE(st.ok());
    for (const std::string& s : row.expected) {
      EXPECT_NE(st.message().find(s), std::string::npos)
          << "message: " << st.message() << "\nmissing: " << s;
    }
    table += "| " + row.parser + " | " + Escape(row.input) + " | " + CodeName(st.code()) + " | `` " +
             Escape(st.message()) + " `` |\n";
  }
  if (const char* path = std::getenv("LOWBIT_HARDENING_TABLE")) {
    std::ofstream(path) << table;
  }
}

// The valid versions of the inputs above do load (so each row fails for the reason it names).
TEST(MalformedInputs, TheUnbrokenInputsLoad) {
  EXPECT_TRUE(ParseGguf(SmallGguf().b).ok());
  const Status model = LoadGgufModel(TinyModel());
  EXPECT_TRUE(model.ok()) << model.message();
  EXPECT_TRUE(LoadLlama2c(Llama2c(kTinyLlama2cHeader, kTinyLlama2cFloats)).ok());
  EXPECT_TRUE(Llama2cTokenizer(Llama2cTok(8, {{0, "<unk>"}, {0, "<s>"}, {0, "</s>"}}), 3).ok());
  EXPECT_TRUE(ParseSafetensors(St(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8)).ok());
  EXPECT_TRUE(ParseConfig(R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                              "vocab_size": 4, "num_attention_heads": 2})")
                  .ok());
  const Status tok = ParseTokenizerJson(
      Json(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})"));
  EXPECT_TRUE(tok.ok()) << tok.message();
  const Status gtok = GgufTokenizer(TokenizerGguf([](GgufWriter& w) { BpeTokens(w, {"a b"}, "gpt-2"); }));
  EXPECT_TRUE(gtok.ok()) << gtok.message();
}

// NaN inside a weight matrix is not detected at load: matrices stay memory-mapped and are never
// scanned (that would read the whole file at open). The NaN reaches the logits of the first
// forward pass; this test documents that behaviour (docs/hardening.md) so a change to it is seen.
TEST(MalformedInputs, NaNInAWeightMatrixLoadsAndPoisonsTheLogits) {
  Result<GgufFile> f = GgufFile::FromBytes(TinyModel({.weight_value = kNaN}), "nan.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  Result<LlamaModel> m = LoadFromGguf(std::make_shared<const GgufFile>(std::move(f).value()));
  ASSERT_TRUE(m.ok()) << m.status().message();
  SessionOptions options;
  options.max_tokens = 2;
  options.n_threads = 1;
  LlamaSession session(*m, options);
  std::vector<float> logits;
  const int32_t token = 3;
  ASSERT_TRUE(session.Forward(std::span<const int32_t>(&token, 1), 0, &logits).ok());
  ASSERT_EQ(logits.size(), 16u);
  for (float v : logits) EXPECT_TRUE(std::isnan(v)) << v;
}

}  // namespace
}  // namespace lowbit
