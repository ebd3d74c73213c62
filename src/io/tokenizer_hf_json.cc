// Byte-level BPE tokenizers from a Hugging Face tokenizer.json (the `tokenizers` library format).
// Accepted (anything else is kUnimplemented naming the field, see docs/tokenizers.md):
//   model: type "BPE", vocab {piece: id}, merges ["a b", ...] or [["a", "b"], ...], no dropout,
//          no continuing_subword_prefix / end_of_word_suffix, optional ignore_merges, unk_token
//   normalizer: null
//   pre_tokenizer: ByteLevel(use_regex=true)                                -> GPT-2 splitting
//                  Sequence[Digits(individual_digits=true), ByteLevel(...)] -> SmolLM / StarCoder
//                  Sequence[Split(Llama 3 or Qwen2 regex, Isolated), ByteLevel(use_regex=false)]
//                  (ByteLevel always with add_prefix_space=false)
//   decoder: ByteLevel or null
//   added_tokens: special ones become control tokens, the others user-defined; lstrip / rstrip
//                 are honoured, single_word is not supported.
// BOS/EOS are not in tokenizer.json; they come from tokenizer_config.json in the same folder
// (bos_token / eos_token as a string or {"content": ...}, add_bos_token) when it exists.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "io/json_limits.h"
#include "io/tokenizer_internal.h"
#include "lowbit/tokenizer.h"

namespace lowbit {
namespace {

using nlohmann::json;
using tokenizer_internal::PreTokenizer;

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return IoError(path + ": read failed");
  return text;
}

Result<json> ParseJsonText(const std::string& name, std::string_view text) {
  if (io::JsonNestingDepth(text, io::kMaxJsonNesting) > io::kMaxJsonNesting) {
    return DataLoss(name + ": JSON nested deeper than " + std::to_string(io::kMaxJsonNesting) +
                    " levels");
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // nlohmann names the position and the problem (e.g. an ill-formed UTF-8 byte in a string).
    return DataLoss(name + ": not valid JSON: " + e.what());
  }
}

// A ByteLevel pre-tokenizer node with add_prefix_space=false and the given use_regex.
Status CheckByteLevel(const std::string& where, const json& node, bool want_regex) {
  if (!node.is_object() || node.value("type", "") != "ByteLevel") {
    return Unimplemented(where + ": expected a ByteLevel pre-tokenizer");
  }
  if (node.value("add_prefix_space", false)) {
    return Unimplemented(where + ".add_prefix_space = true is not supported");
  }
  if (node.value("use_regex", true) != want_regex) {
    return Unimplemented(where + ".use_regex = " + (want_regex ? "false" : "true") +
                         " is not supported in this pipeline");
  }
  return Status::Ok();
}

Result<PreTokenizer> ParsePreTokenizer(const std::string& path, const json& pre) {
  const std::string where = path + ": pre_tokenizer";
  if (pre.is_object() && pre.value("type", "") == "ByteLevel") {
    LOWBIT_RETURN_IF_ERROR(CheckByteLevel(where, pre, true));
    return PreTokenizer::kGpt2;
  }
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const json& first = pre["pretokenizers"][0];
    const json& second = pre["pretokenizers"][1];
    const std::string type = first.is_object() ? first.value("type", "") : "";
    if (type == "Digits") {
      if (!first.value("individual_digits", false)) {
        return Unimplemented(where + ".pretokenizers[0]: Digits without individual_digits");
      }
      LOWBIT_RETURN_IF_ERROR(CheckByteLevel(where + ".pretokenizers[1]", second, true));
      return PreTokenizer::kGpt2Digits;
    }
    if (type == "Split") {
      const std::string regex = first.contains("pattern") && first["pattern"].is_object()
                                    ? first["pattern"].value("Regex", "")
                                    : "";
      if (first.value("behavior", "") != "Isolated" || first.value("invert", false)) {
        return Unimplemented(where + ".pretokenizers[0]: only Split with behavior Isolated");
      }
      LOWBIT_RETURN_IF_ERROR(CheckByteLevel(where + ".pretokenizers[1]", second, false));
      if (regex == tokenizer_internal::kLlama3Pattern) return PreTokenizer::kLlama3;
      if (regex == tokenizer_internal::kQwen2Pattern) return PreTokenizer::kQwen2;
      return Unimplemented(where + ".pretokenizers[0].pattern.Regex = '" + regex +
                           "' is not a supported pattern (Llama 3 or Qwen2)");
    }
  }
  return Unimplemented(where + " = " + pre.dump().substr(0, 200) + " is not a supported pipeline");
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...} or null.
std::string SpecialTokenText(const json& config, const char* key) {
  if (!config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

// config: the parsed tokenizer_config.json, or null when there is none.
Result<std::unique_ptr<Tokenizer>> FromJson(const std::string& path, const json& root,
                                            const json& config) {
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    return DataLoss(path + ": no 'model' object");
  }
  const json& model = root["model"];
  const std::string model_type = model.value("type", "");
  if (model_type != "BPE") {
    return Unimplemented(path + ": model.type = '" + model_type + "' is not supported (BPE only)");
  }
  if (!model.value("dropout", json()).is_null()) {
    return Unimplemented(path + ": model.dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty())) {
      return Unimplemented(path + ": model." + key + " is not supported");
    }
  }
  if (model.value("byte_fallback", false)) {
    return Unimplemented(path + ": model.byte_fallback is not supported with byte-level BPE");
  }
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    return Unimplemented(path + ": normalizer '" + root["normalizer"].value("type", "?") +
                         "' is not supported (only null)");
  }
  if (root.contains("decoder") && !root["decoder"].is_null() &&
      root["decoder"].value("type", "") != "ByteLevel") {
    return Unimplemented(path + ": decoder '" + root["decoder"].value("type", "?") +
                         "' is not supported (only ByteLevel)");
  }

  tokenizer_internal::BpeVocabData data;
  data.source = path;
  data.pre_name = "tokenizer.json";
  LOWBIT_ASSIGN_OR_RETURN(data.pre, ParsePreTokenizer(path, root.value("pre_tokenizer", json())));
  data.ignore_merges = model.value("ignore_merges", false);

  // Vocabulary: model.vocab plus added_tokens, ids dense from 0.
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return DataLoss(path + ": model.vocab is not an object");
  }
  std::map<int64_t, std::string> by_id;
  for (const auto& [piece, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= INT32_MAX) {
      return DataLoss(path + ": model.vocab['" + piece + "'] is not a valid id");
    }
    if (!by_id.emplace(id.get<int64_t>(), piece).second) {
      return DataLoss(path + ": model.vocab: id " + std::to_string(id.get<int64_t>()) +
                      " is used twice");
    }
  }
  struct Added {
    int64_t id;
    bool special, lstrip, rstrip;
  };
  std::vector<Added> added;
  const json added_tokens = root.value("added_tokens", json::array());
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const json& t = added_tokens[i];
    const std::string where = path + ": added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() >= INT32_MAX) {
      return DataLoss(where + ": expected {id, content}");
    }
    if (t.value("single_word", false))
      return Unimplemented(where + ".single_word is not supported");
    const int64_t id = t["id"].get<int64_t>();
    const std::string content = t["content"].get<std::string>();
    const auto [it, inserted] = by_id.emplace(id, content);
    if (!inserted && it->second != content) {
      return DataLoss(where + ": id " + std::to_string(id) + " is '" + it->second +
                      "' in model.vocab but '" + content + "' here");
    }
    added.push_back(
        {id, t.value("special", false), t.value("lstrip", false), t.value("rstrip", false)});
  }
  if (by_id.empty()) return DataLoss(path + ": the vocabulary is empty");
  const int64_t n = by_id.rbegin()->first + 1;
  if (static_cast<int64_t>(by_id.size()) != n) {
    int64_t missing = 0;
    while (by_id.count(missing)) ++missing;
    return DataLoss(path + ": token id " + std::to_string(missing) +
                    " is missing (ids must be 0.." + std::to_string(n - 1) + ")");
  }
  data.pieces.reserve(n);
  for (auto& [id, piece] : by_id) data.pieces.push_back(std::move(piece));
  data.types.assign(n, TokenType::kNormal);
  for (const Added& a : added) {
    data.types[a.id] = a.special ? TokenType::kControl : TokenType::kUserDefined;
    if (a.lstrip) data.lstrip_ids.push_back(static_cast<int32_t>(a.id));
    if (a.rstrip) data.rstrip_ids.push_back(static_cast<int32_t>(a.id));
  }

  data.merges_field = "model.merges";
  const json merges = model.value("merges", json::array());
  data.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (space != std::string::npos) {
        data.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
        continue;
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      data.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    return DataLoss(path + ": model.merges[" + std::to_string(i) + "] = " + m.dump() +
                    " is not 'left right' or [left, right]");
  }

  std::map<std::string, int32_t, std::less<>> id_of;
  for (int64_t i = n - 1; i >= 0; --i) id_of[data.pieces[i]] = static_cast<int32_t>(i);
  const auto lookup = [&](const std::string& piece) -> int32_t {
    const auto it = id_of.find(piece);
    return it == id_of.end() ? -1 : it->second;
  };
  const json unk = model.value("unk_token", json());
  if (unk.is_string()) data.unk = lookup(unk.get<std::string>());

  if (config.is_object()) {
    data.bos = lookup(SpecialTokenText(config, "bos_token"));
    data.eos = lookup(SpecialTokenText(config, "eos_token"));
    const json add_bos = config.value("add_bos_token", json());
    data.add_bos = add_bos.is_boolean() ? add_bos.get<bool>() : false;
  }
  return tokenizer_internal::MakeBpeTokenizer(std::move(data));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> TokenizerFromHfJson(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadText(path));
  const std::filesystem::path config_path =
      std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::string config_text;
  if (std::filesystem::exists(config_path)) {
    LOWBIT_ASSIGN_OR_RETURN(config_text, ReadText(config_path.string()));
    // An empty tokenizer_config.json is not JSON; say so rather than treating it as absent.
    if (config_text.empty()) return DataLoss(config_path.string() + ": not valid JSON");
  }
  return TokenizerFromHfJsonText(text, config_text, path);
}

Result<std::unique_ptr<Tokenizer>> TokenizerFromHfJsonText(std::string_view tokenizer_json,
                                                           std::string_view tokenizer_config_json,
                                                           const std::string& name) {
  LOWBIT_ASSIGN_OR_RETURN(json root, ParseJsonText(name, tokenizer_json));
  json config;
  if (!tokenizer_config_json.empty()) {
    const std::string config_name =
        (std::filesystem::path(name).parent_path() / "tokenizer_config.json").string();
    LOWBIT_ASSIGN_OR_RETURN(config, ParseJsonText(config_name, tokenizer_config_json));
  }
  try {
    return FromJson(name, root, config);
  } catch (const json::exception& e) {
    // A field of the wrong JSON type (nlohmann reports which access failed).
    return DataLoss(name + ": unexpected JSON structure: " + e.what());
  }
}

}  // namespace lowbit
