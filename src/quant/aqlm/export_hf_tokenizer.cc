// GGUF byte-level BPE tokenizer metadata -> Hugging Face tokenizer.json + tokenizer_config.json
// (the `tokenizers` library's serialization), in the pipeline that lowbit's reader
// (src/io/tokenizer_hf_json.cc) and HF `tokenizers` both run the way the GGUF tokenizer does:
//   model          BPE, vocab = tokenizer.ggml.tokens (id order), merges = tokenizer.ggml.merges as
//                  [left, right] pairs (rank = index), no dropout / byte fallback / prefixes,
//                  ignore_merges with the Llama 3 pre-tokenizer (as llama.cpp does)
//   added_tokens   every control token (special) and user-defined token (not special), matched
//                  verbatim (normalized false, no lstrip/rstrip)
//   normalizer     null (GGUF tokenizers do not normalize)
//   pre_tokenizer  tokenizer.ggml.pre mapped as in docs/tokenizers.md: GPT-2 -> ByteLevel(use_regex);
//                  SmolLM/StarCoder -> Sequence[Digits(individual), ByteLevel]; Llama 3 / Qwen2 ->
//                  Sequence[Split(pattern, Isolated), ByteLevel(use_regex false)]
//   post_processor TemplateProcessing adding BOS when tokenizer.ggml.add_bos_token, else ByteLevel
//   decoder        ByteLevel
// tokenizer_config.json carries bos/eos/unk/pad tokens, add_bos_token and the chat template.
#include <nlohmann/json.hpp>

#include "io/tokenizer_pretokenize.h"
#include "lowbit/gguf.h"
#include "lowbit/tokenizer.h"
#include "quant/aqlm/export_hf.h"

namespace lowbit {
namespace {

// Keys are written sorted (nlohmann::json); their order carries no meaning in either file.
using Json = nlohmann::json;
namespace ti = tokenizer_internal;

Json ByteLevel(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

Json PreTokenizerJson(ti::PreTokenizer pre) {
  switch (pre) {
    case ti::PreTokenizer::kGpt2: return ByteLevel(true);
    case ti::PreTokenizer::kGpt2Digits:
      return {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevel(true)}}};
    case ti::PreTokenizer::kLlama3:
    case ti::PreTokenizer::kQwen2: {
      const std::string_view pattern =
          pre == ti::PreTokenizer::kLlama3 ? ti::kLlama3Pattern : ti::kQwen2Pattern;
      const Json split = {{"type", "Split"},
                          {"pattern", {{"Regex", std::string(pattern)}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
      return {{"type", "Sequence"}, {"pretokenizers", {split, ByteLevel(false)}}};
    }
  }
  return nullptr;
}

// A special-token id key: -1 when absent or GGUF's "none" (0xFFFFFFFF); DataLoss when out of range.
Result<int64_t> SpecialId(const GgufFile& gguf, const std::string& key, size_t n_vocab) {
  LOWBIT_ASSIGN_OR_RETURN(int64_t id, gguf.GetIntOr(key, -1));
  if (id == 0xFFFFFFFFll || id < 0) return int64_t{-1};
  if (id >= static_cast<int64_t>(n_vocab)) {
    return DataLoss(gguf.path() + ": " + key + " = " + std::to_string(id) + " is not a token id (" +
                    std::to_string(n_vocab) + " tokens)");
  }
  return id;
}

}  // namespace

Result<HfTokenizerFiles> HfTokenizerFilesFromGguf(const GgufFile& gguf) {
  LOWBIT_ASSIGN_OR_RETURN(const std::string model, gguf.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return Unimplemented(gguf.path() + ": tokenizer.ggml.model = '" + model +
                         "': only byte-level BPE ('gpt2') tokenizers are exported to tokenizer.json "
                         "(lowbit's tokenizer.json reader has no SentencePiece pipeline); pass "
                         "--skip-tokenizer to export the model without tokenizer files");
  }
  LOWBIT_ASSIGN_OR_RETURN(std::span<const std::string> tokens,
                          gguf.GetStringArray("tokenizer.ggml.tokens"));
  LOWBIT_ASSIGN_OR_RETURN(std::span<const std::string> merges,
                          gguf.GetStringArray("tokenizer.ggml.merges"));
  const size_t n = tokens.size();
  std::vector<int64_t> types(n, static_cast<int64_t>(TokenType::kNormal));
  if (gguf.Find("tokenizer.ggml.token_type") != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(types, gguf.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n) {
      return DataLoss(gguf.path() + ": tokenizer.ggml.token_type has " +
                      std::to_string(types.size()) + " entries but tokenizer.ggml.tokens has " +
                      std::to_string(n));
    }
  }
  LOWBIT_ASSIGN_OR_RETURN(const std::string pre_name,
                          gguf.GetStringOr("tokenizer.ggml.pre", "default"));
  Result<ti::PreTokenizer> pre = ti::PreTokenizerFromGgufName(pre_name);
  if (!pre.ok()) return Status(pre.status().code(), gguf.path() + ": " + pre.status().message());

  Json vocab = Json::object();
  Json added = Json::array();
  for (size_t i = 0; i < n; ++i) {
    if (vocab.contains(tokens[i])) {
      return Unimplemented(gguf.path() + ": tokenizer.ggml.tokens[" + std::to_string(i) + "] = '" +
                           tokens[i] + "' repeats an earlier token; tokenizer.json maps each "
                           "piece to one id");
    }
    vocab[tokens[i]] = i;
    const auto type = static_cast<TokenType>(types[i]);
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {
      added.push_back({{"id", i},
                       {"content", tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", type == TokenType::kControl}});
    }
  }
  Json merge_pairs = Json::array();
  for (size_t i = 0; i < merges.size(); ++i) {
    // As the GGUF reader splits them: at the first space after the first character.
    const size_t space = merges[i].size() > 1 ? merges[i].find(' ', 1) : std::string::npos;
    if (space == std::string::npos) {
      return DataLoss(gguf.path() + ": tokenizer.ggml.merges[" + std::to_string(i) + "] = '" +
                      merges[i] + "' is not 'left right'");
    }
    merge_pairs.push_back({merges[i].substr(0, space), merges[i].substr(space + 1)});
  }

  LOWBIT_ASSIGN_OR_RETURN(const int64_t bos, SpecialId(gguf, "tokenizer.ggml.bos_token_id", n));
  LOWBIT_ASSIGN_OR_RETURN(const int64_t eos, SpecialId(gguf, "tokenizer.ggml.eos_token_id", n));
  LOWBIT_ASSIGN_OR_RETURN(const int64_t unk,
                          SpecialId(gguf, "tokenizer.ggml.unknown_token_id", n));
  LOWBIT_ASSIGN_OR_RETURN(const int64_t pad,
                          SpecialId(gguf, "tokenizer.ggml.padding_token_id", n));
  bool add_bos = false;
  if (gguf.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(add_bos, gguf.GetBool("tokenizer.ggml.add_bos_token"));
  }
  const auto piece = [&](int64_t id) -> Json {
    return id < 0 ? Json(nullptr) : Json(tokens[static_cast<size_t>(id)]);
  };

  Json post = {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", false},
               {"use_regex", false}};
  if (add_bos && bos >= 0) {
    const std::string b = tokens[static_cast<size_t>(bos)];
    const Json bos_item = {{"SpecialToken", {{"id", b}, {"type_id", 0}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", {bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {bos_item,
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              bos_item,
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{b, {{"id", b}, {"ids", {bos}}, {"tokens", {b}}}}}}};
  }
  const bool llama3 = *pre == ti::PreTokenizer::kLlama3;
  Json root = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", nullptr},
               {"pre_tokenizer", PreTokenizerJson(*pre)},
               {"post_processor", post},
               {"decoder", ByteLevel(true)},
               {"model",
                {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", piece(unk)},
                 {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr},
                 {"fuse_unk", false},
                 {"byte_fallback", false},
                 {"ignore_merges", llama3},
                 {"vocab", std::move(vocab)},
                 {"merges", std::move(merge_pairs)}}}};

  Json config = {{"add_bos_token", add_bos},
                 {"add_eos_token", false},
                 {"bos_token", piece(bos)},
                 {"eos_token", piece(eos)},
                 {"unk_token", piece(unk)},
                 {"pad_token", piece(pad)},
                 {"clean_up_tokenization_spaces", false},
                 {"tokenizer_class", "PreTrainedTokenizerFast"}};
  if (gguf.Find("tokenizer.chat_template") != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(const std::string tmpl, gguf.GetString("tokenizer.chat_template"));
    config["chat_template"] = tmpl;
  }
  HfTokenizerFiles files;
  try {
    files.tokenizer_json = root.dump(2) + "\n";
    files.tokenizer_config_json = config.dump(2) + "\n";
  } catch (const Json::exception& e) {
    // Pieces that are not valid UTF-8 cannot be JSON strings.
    return DataLoss(gguf.path() + ": tokenizer metadata is not valid UTF-8: " + e.what());
  }
  return files;
}

}  // namespace lowbit
