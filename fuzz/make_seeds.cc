// Writes the generated seed inputs of the fuzzers (scripts/fuzz.sh runs it):
//   lowbit_fuzz_seeds OUT_DIR [SHARED_DATA_DIR]
// into OUT_DIR/<fuzzer>/: tiny models and vocabularies made with lowbit's own writers (small
// enough that a fuzzer runs thousands of them a second), and, when SHARED_DATA_DIR
// (../shared/data) is given, seeds cut from the real files there: a metadata-only copy of
// stories260K.gguf (its real 512-token vocabulary), the first bytes of the .gguf and .bin files
// (headers and tensor tables; the full files are too large for fast mutation) and tok512.bin.
// Weights of the tiny models are small deterministic values (sin), not a trained model: a seed
// only has to be well formed so that mutations reach the code behind the parser.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/tokenizer_pretokenize.h"
#include "io/tokenizer_unicode.h"
#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"
#include "lowbit/safetensors.h"

namespace fs = std::filesystem;
using namespace lowbit;

namespace {

void Die(const std::string& what) {
  std::fprintf(stderr, "lowbit_fuzz_seeds: %s\n", what.c_str());
  std::exit(1);
}

void Must(const Status& st) {
  if (!st.ok()) Die(st.ToString());
}

void WriteBytes(const fs::path& path, const void* data, size_t n) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!out) Die("cannot write " + path.string());
}
void WriteBytes(const fs::path& path, const std::vector<uint8_t>& v) {
  WriteBytes(path, v.data(), v.size());
}
void WriteText(const fs::path& path, const std::string& s) { WriteBytes(path, s.data(), s.size()); }

std::vector<uint8_t> ReadBytes(const fs::path& path, size_t max_bytes = SIZE_MAX) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (v.size() > max_bytes) v.resize(max_bytes);
  return v;
}

FormatPtr Fmt(const std::string& spec) {
  Result<FormatPtr> f = ParseFormat(spec);
  if (!f.ok()) Die(f.status().ToString());
  return *f;
}

std::vector<float> Values(int64_t n, float amplitude, int salt) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = amplitude * std::sin(0.7f * float(i) + float(salt));
  return v;
}

// A tensor of (rows, cols) in `format`, quantized from Values().
void AddTensor(GgufWriter& w, const std::string& name, std::vector<int64_t> dims,
               const FormatPtr& format, float amplitude, int salt) {
  const int64_t cols = dims[0];
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  const std::vector<float> x = Values(rows * cols, amplitude, salt);
  std::vector<uint8_t> packed(static_cast<size_t>(format->PackedBytes(rows, cols)));
  Must(format->Quantize(x.data(), rows, cols, packed.data()));
  Must(w.AddTensor(name, std::move(dims), format, packed));
}

// A SentencePiece-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, a few pieces.
void SetSpmVocab(GgufWriter& w, int64_t vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  const char* pieces[] = {"\xE2\x96\x81", "e", "t", "a", "o", "n", "\xE2\x96\x81t", "he",
                          "\xE2\x96\x81the", "in", "<user>"};
  for (int i = 0; tokens.size() < size_t(vocab); ++i) {
    if (i < int(std::size(pieces))) {
      tokens.push_back(pieces[i]);
      types.push_back(std::string(pieces[i]) == "<user>" ? 4 : 1);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", (i - int(std::size(pieces))) & 0xFF);
      tokens.push_back(buf);
      types.push_back(6);
    }
    scores.push_back(-float(i));
  }
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetFloat32Array("tokenizer.ggml.scores", scores);
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetUint32("tokenizer.ggml.bos_token_id", 1);
  w.SetUint32("tokenizer.ggml.eos_token_id", 2);
  w.SetBool("tokenizer.ggml.add_bos_token", true);
}

// GPT-2 byte-level vocabulary: the 256 byte stand-ins, a few merges, two special tokens.
struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;  // "left right"
};
BpeVocab MakeBpeVocab() {
  const auto& alphabet = tokenizer_internal::GetByteLevelAlphabet();
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(alphabet.byte_to_utf8[b]);
  const std::pair<const char*, const char*> merges[] = {
      {"\xC4\xA0", "t"}, {"h", "e"}, {"\xC4\xA0t", "he"}, {"i", "n"}, {"o", "n"}, {"1", "2"}};
  for (const auto& [l, r] : merges) {
    v.merges.push_back(std::string(l) + " " + r);
    v.tokens.push_back(std::string(l) + r);
  }
  v.tokens.push_back("<|endoftext|>");
  v.tokens.push_back("<|im_end|>");
  return v;
}

void WriteGgufSeeds(const fs::path& out) {
  // Tiny llama, f32 weights, tied embeddings, with its tokenizer (32 tokens).
  const int64_t vocab = 32;
  auto tiny = [&](const std::string& file, const FormatPtr& matrix_format, int64_t dim,
                  bool untied, bool qkv_bias, const char* arch) {
    GgufWriter w;
    const std::string a = arch;
    w.SetString("general.architecture", a);
    w.SetUint32(a + ".embedding_length", uint32_t(dim));
    w.SetUint32(a + ".feed_forward_length", uint32_t(2 * dim));
    w.SetUint32(a + ".block_count", 1);
    w.SetUint32(a + ".attention.head_count", 2);
    w.SetUint32(a + ".attention.head_count_kv", 1);
    w.SetUint32(a + ".context_length", 64);
    w.SetFloat32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.SetFloat32(a + ".rope.freq_base", 10000.0f);
    SetSpmVocab(w, vocab);
    const FormatPtr f32 = Fmt("f32");
    const int64_t hd = dim / 2, kv = hd, hidden = 2 * dim;
    AddTensor(w, "token_embd.weight", {dim, vocab}, matrix_format, 0.5f, 1);
    AddTensor(w, "blk.0.attn_norm.weight", {dim}, f32, 1.0f, 2);
    AddTensor(w, "blk.0.attn_q.weight", {dim, dim}, matrix_format, 0.3f, 3);
    AddTensor(w, "blk.0.attn_k.weight", {dim, kv}, matrix_format, 0.3f, 4);
    AddTensor(w, "blk.0.attn_v.weight", {dim, kv}, matrix_format, 0.3f, 5);
    AddTensor(w, "blk.0.attn_output.weight", {dim, dim}, matrix_format, 0.3f, 6);
    if (qkv_bias) {
      AddTensor(w, "blk.0.attn_q.bias", {dim}, f32, 0.1f, 7);
      AddTensor(w, "blk.0.attn_k.bias", {kv}, f32, 0.1f, 8);
      AddTensor(w, "blk.0.attn_v.bias", {kv}, f32, 0.1f, 9);
    }
    AddTensor(w, "blk.0.ffn_norm.weight", {dim}, f32, 1.0f, 10);
    AddTensor(w, "blk.0.ffn_gate.weight", {dim, hidden}, matrix_format, 0.3f, 11);
    AddTensor(w, "blk.0.ffn_up.weight", {dim, hidden}, matrix_format, 0.3f, 12);
    AddTensor(w, "blk.0.ffn_down.weight", {hidden, dim}, matrix_format, 0.3f, 13);
    AddTensor(w, "output_norm.weight", {dim}, f32, 1.0f, 14);
    if (untied) AddTensor(w, "output.weight", {dim, vocab}, matrix_format, 0.5f, 15);
    Result<std::vector<uint8_t>> bytes = w.Serialize();
    if (!bytes.ok()) Die(bytes.status().ToString());
    WriteBytes(out / "fuzz_gguf" / file, *bytes);
  };
  tiny("tiny_llama_f32.gguf", Fmt("f32"), 8, false, false, "llama");
  tiny("tiny_qwen2_f16_untied.gguf", Fmt("f16"), 8, true, true, "qwen2");
  tiny("tiny_llama_q8_0.gguf", Fmt("q8_0"), 32, false, false, "llama");
  tiny("tiny_llama_q4_0_untied.gguf", Fmt("q4_0"), 32, true, false, "llama");
  // A lowbit format without a ggml type: stored as type 1024 + lowbit.tensor_format.<name>.
  for (const PresetInfo& p : FormatRegistry::Get().presets()) {
    const FormatPtr f = Fmt(p.spec);
    if (!f->gguf_type() && f->can_quantize() && f->block_size() > 0 && 32 % f->block_size() == 0) {
      tiny("tiny_llama_" + p.name + ".gguf", f, 32, false, false, "llama");
      break;
    }
  }

  // Tokenizer-only files (no tensors).
  {
    GgufWriter w;
    SetSpmVocab(w, 300);
    w.SetBool("tokenizer.ggml.add_space_prefix", true);
    WriteBytes(out / "fuzz_gguf_tokenizer" / "spm_300.gguf", *w.Serialize());
  }
  const BpeVocab bpe = MakeBpeVocab();
  for (const char* pre : {"gpt-2", "smollm", "llama-bpe", "qwen2"}) {
    GgufWriter w;
    w.SetString("tokenizer.ggml.model", "gpt2");
    w.SetString("tokenizer.ggml.pre", pre);
    w.SetStringArray("tokenizer.ggml.tokens", bpe.tokens);
    w.SetStringArray("tokenizer.ggml.merges", bpe.merges);
    std::vector<int32_t> types(bpe.tokens.size(), 1);
    types[types.size() - 1] = 3;
    types[types.size() - 2] = 3;
    w.SetInt32Array("tokenizer.ggml.token_type", types);
    w.SetUint32("tokenizer.ggml.bos_token_id", uint32_t(bpe.tokens.size() - 2));
    w.SetUint32("tokenizer.ggml.eos_token_id", uint32_t(bpe.tokens.size() - 1));
    WriteBytes(out / "fuzz_gguf_tokenizer" / (std::string("gpt2_") + pre + ".gguf"), *w.Serialize());
  }
}

void WriteTokenizerJsonSeeds(const fs::path& out) {
  using nlohmann::json;
  const BpeVocab bpe = MakeBpeVocab();
  json vocab = json::object();
  for (size_t i = 0; i + 2 < bpe.tokens.size(); ++i) vocab[bpe.tokens[i]] = i;
  const size_t n = bpe.tokens.size();
  json added = json::array();
  added.push_back({{"id", n - 2}, {"content", "<|endoftext|>"}, {"single_word", false},
                   {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  added.push_back({{"id", n - 1}, {"content", "<|im_end|>"}, {"single_word", false},
                   {"lstrip", true}, {"rstrip", true}, {"normalized", false}, {"special", false}});
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                           {"trim_offsets", true}, {"use_regex", true}};
  json byte_level_no_regex = byte_level;
  byte_level_no_regex["use_regex"] = false;
  auto split = [&](std::string_view pattern) {
    return json{{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"},
                   {"pattern", {{"Regex", std::string(pattern)}}},
                   {"behavior", "Isolated"},
                   {"invert", false}},
                  byte_level_no_regex}}};
  };
  const std::pair<const char*, json> pipelines[] = {
      {"gpt2", byte_level},
      {"smollm",
       {{"type", "Sequence"},
        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}}},
      {"llama3", split(tokenizer_internal::kLlama3Pattern)},
      {"qwen2", split(tokenizer_internal::kQwen2Pattern)},
  };
  for (const auto& [name, pre] : pipelines) {
    for (bool pair_merges : {false, true}) {
      json merges = json::array();
      for (const std::string& m : bpe.merges) {
        if (pair_merges) {
          const size_t space = m.find(' ', 1);
          merges.push_back({m.substr(0, space), m.substr(space + 1)});
        } else {
          merges.push_back(m);
        }
      }
      json root = {{"version", "1.0"},
                   {"truncation", nullptr},
                   {"padding", nullptr},
                   {"added_tokens", added},
                   {"normalizer", nullptr},
                   {"pre_tokenizer", pre},
                   {"post_processor", nullptr},
                   {"decoder", {{"type", "ByteLevel"}}},
                   {"model",
                    {{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"ignore_merges", std::string(name) == "llama3"},
                     {"vocab", vocab},
                     {"merges", merges}}}};
      WriteText(out / "fuzz_tokenizer_json" /
                    (std::string(name) + (pair_merges ? "_pair_merges" : "") + ".json"),
                root.dump(pair_merges ? -1 : 1));
    }
  }
}

void WriteSafetensorsSeeds(const fs::path& out) {
  {
    SafetensorsWriter w;
    w.SetMetadata("format", "pt");
    const std::vector<float> a = Values(12, 1.0f, 1);
    Must(w.AddTensor("model.embed_tokens.weight", {3, 4}, *Fmt("f32"),
                     {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4}));
    const std::vector<uint8_t> b = {0, 0x3f, 0x80, 0x3f, 0, 0xc0, 0x80, 0x7f};
    Must(w.AddTensor("model.norm.weight", {4}, SafetensorsDtype::kBf16, b));
    const std::vector<uint8_t> c(16, 7);
    Must(w.AddTensor("ids", {2}, SafetensorsDtype::kI64, c));
    Must(w.AddTensor("scalar", {}, SafetensorsDtype::kF16, std::vector<uint8_t>{0, 0x3c}));
    Must(w.AddTensor("empty", {0, 5}, SafetensorsDtype::kF32, {}));
    WriteBytes(out / "fuzz_safetensors" / "mixed.safetensors", *w.Serialize());
  }
  {
    SafetensorsWriter w;
    const std::vector<float> a = Values(64, 0.5f, 2);
    Must(w.AddTensor("lm_head.weight", {8, 8}, *Fmt("f32"),
                     {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4}));
    WriteBytes(out / "fuzz_safetensors" / "one_f32.safetensors", *w.Serialize());
  }
}

// llama2.c checkpoint: 7 int32 header, f32 tensors in run.c's order.
void WriteLlama2cSeeds(const fs::path& out) {
  for (bool untied : {false, true}) {
    const int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 32, seq = 4;
    const int32_t header[7] = {dim, hidden, layers, heads, kv_heads, untied ? -vocab : vocab, seq};
    const int64_t hs = dim / heads, kv_dim = kv_heads * hs;
    const int64_t floats = int64_t(vocab) * dim + layers * dim + layers * dim * dim +
                           2 * layers * kv_dim * dim + layers * dim * dim + layers * dim +
                           3 * layers * hidden * dim + dim + seq * hs + (untied ? vocab * dim : 0);
    std::vector<float> w = Values(floats, 0.3f, 3);
    std::vector<uint8_t> bytes(sizeof(header) + w.size() * 4);
    std::memcpy(bytes.data(), header, sizeof(header));
    std::memcpy(bytes.data() + sizeof(header), w.data(), w.size() * 4);
    WriteBytes(out / "fuzz_llama2c" / (untied ? "tiny_untied.bin" : "tiny_tied.bin"), bytes);
  }
  // llama2.c tokenizer: max_token_length, then (score, length, bytes) per token.
  std::vector<uint8_t> tok;
  auto put = [&](const void* p, size_t n) {
    tok.insert(tok.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const int32_t max_len = 8;
  put(&max_len, 4);
  const char* pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", "<0xC3>", " ", "e", "t",
                          " t", "he", " the", "\xC3\xA9"};
  for (size_t i = 0; i < std::size(pieces); ++i) {
    const float score = -float(i);
    const int32_t len = int32_t(std::strlen(pieces[i]));
    put(&score, 4);
    put(&len, 4);
    put(pieces[i], size_t(len));
  }
  WriteBytes(out / "fuzz_llama2c_tokenizer" / "tiny_tok.bin", tok);
}

void WriteFormatSpecSeeds(const fs::path& out) {
  const FormatRegistry& r = FormatRegistry::Get();
  for (const PresetInfo& p : r.presets()) {
    WriteText(out / "fuzz_format_spec" / ("preset_" + p.name), p.name);
    WriteText(out / "fuzz_format_spec" / ("spec_" + p.name), p.spec);
  }
  for (const FamilyInfo& f : r.families()) {
    WriteText(out / "fuzz_format_spec" / ("family_" + f.name), f.name);
  }
  // A libFuzzer dictionary (-dict=) of family names, parameter keys and values from the help texts.
  std::set<std::string> words = {":", ",", "=", "+", "-", "."};
  for (const PresetInfo& p : r.presets()) words.insert(p.name);
  for (const FamilyInfo& f : r.families()) {
    words.insert(f.name + ":");
    std::string word;
    for (char ch : f.params_help + " ") {
      if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_') {
        word.push_back(ch);
      } else {
        if (!word.empty()) words.insert(ch == '=' ? word + "=" : word);
        word.clear();
      }
    }
  }
  std::string dict;
  for (const std::string& w : words) dict += "\"" + w + "\"\n";
  WriteText(out / "format_spec.dict", dict);
}

// Seeds from the real files in ../shared/data (read in place, never copied into the repository).
void WriteSharedDataSeeds(const fs::path& out, const fs::path& shared) {
  const fs::path gguf = shared / "stories260K" / "stories260K.gguf";
  if (fs::exists(gguf)) {
    Result<GgufFile> f = GgufFile::Open(gguf.string());
    if (!f.ok()) Die(f.status().ToString());
    GgufWriter w;  // the real metadata (512-token vocabulary, hyper-parameters), no tensors
    for (const GgufKeyValue& kv : f->metadata()) w.SetValue(kv.key, kv.value);
    const std::vector<uint8_t> meta = *w.Serialize();
    WriteBytes(out / "fuzz_gguf_tokenizer" / "stories260K_metadata.gguf", meta);
    WriteBytes(out / "fuzz_gguf" / "stories260K_metadata.gguf", meta);
    // Header, metadata and tensor table of the real file, cut before the tensor data.
    WriteBytes(out / "fuzz_gguf" / "stories260K_head.gguf", ReadBytes(gguf, f->data_offset()));
  }
  const fs::path bin = shared / "stories260K" / "stories260K.bin";
  if (fs::exists(bin)) WriteBytes(out / "fuzz_llama2c" / "stories260K_head.bin", ReadBytes(bin, 4096));
  const fs::path tok = shared / "stories260K" / "tok512.bin";
  if (fs::exists(tok)) WriteBytes(out / "fuzz_llama2c_tokenizer" / "tok512.bin", ReadBytes(tok));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) Die("usage: lowbit_fuzz_seeds OUT_DIR [SHARED_DATA_DIR]");
  const fs::path out = argv[1];
  WriteGgufSeeds(out);
  WriteTokenizerJsonSeeds(out);
  WriteSafetensorsSeeds(out);
  WriteLlama2cSeeds(out);
  WriteFormatSpecSeeds(out);
  if (argc == 3) WriteSharedDataSeeds(out, argv[2]);
  return 0;
}
