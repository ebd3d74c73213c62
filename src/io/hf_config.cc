// config.json reader; keys, defaults and checks: include/lowbit/hf_config.h.
#include "lowbit/hf_config.h"

#include <sys/stat.h>

#include <climits>

#include <nlohmann/json.hpp>

#include "io/file_io.h"
#include "io/json_limits.h"

namespace lowbit {
namespace {

using nlohmann::json;

// Largest size (hidden_size, vocab_size, ...) accepted: real models are far below 2^31.
constexpr int64_t kMaxSize = INT32_MAX;

class ConfigReader {
 public:
  // prefix names a nested object in messages ("quantization_config.").
  ConfigReader(const json& j, const std::string& name, std::string prefix = "")
      : j_(j), name_(name), prefix_(std::move(prefix)) {}

  Status Fail(std::string_view key, const std::string& reason) const {
    return InvalidArgument(name_ + ": field '" + prefix_ + std::string(key) + "': " + reason);
  }

  // A positive integer; required unless default_value is given.
  Status PositiveInt(std::string_view key, int64_t* out,
                     std::optional<int64_t> default_value = std::nullopt) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (default_value) {
        *out = *default_value;
        return Status::Ok();
      }
      return Fail(key, "missing (required)");
    }
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
      return Fail(key, "expected a positive integer, got " + it->dump());
    }
    // Sizes are bounded so that products of two (heads * head_dim) cannot overflow int64.
    if (it->get<int64_t>() > kMaxSize) {
      return Fail(key, it->dump() + " exceeds the limit of " + std::to_string(kMaxSize));
    }
    *out = it->get<int64_t>();
    return Status::Ok();
  }

  Status PositiveNumber(std::string_view key, double* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();  // keep the default
    if (!it->is_number() || !(it->get<double>() > 0.0)) {
      return Fail(key, "expected a positive number, got " + it->dump());
    }
    *out = it->get<double>();
    return Status::Ok();
  }

  Status Bool(std::string_view key, bool* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();
    if (!it->is_boolean()) return Fail(key, "expected true or false, got " + it->dump());
    *out = it->get<bool>();
    return Status::Ok();
  }

  const std::string& name() const { return name_; }

  Status String(std::string_view key, std::string* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();
    if (!it->is_string()) return Fail(key, "expected a string, got " + it->dump());
    *out = it->get<std::string>();
    return Status::Ok();
  }

 private:
  const json& j_;
  const std::string& name_;
  std::string prefix_;
};

Status ParseRopeScaling(const json& j, const ConfigReader& r, HfConfig* c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return r.Fail("rope_scaling", "expected an object or null");
  RopeScaling s;
  const auto fail = [&](std::string_view key, const std::string& why) {
    return r.Fail("rope_scaling." + std::string(key), why);
  };
  auto type = it->find("rope_type");
  if (type == it->end()) type = it->find("type");
  if (type == it->end() || !type->is_string()) return fail("rope_type", "missing or not a string");
  s.type = type->get<std::string>();
  for (auto [key, out] : {std::pair<const char*, double*>{"factor", &s.factor},
                          {"low_freq_factor", &s.low_freq_factor},
                          {"high_freq_factor", &s.high_freq_factor}}) {
    auto v = it->find(key);
    if (v == it->end() || v->is_null()) continue;
    if (!v->is_number() || !(v->get<double>() > 0.0)) {
      return fail(key, "expected a positive number, got " + v->dump());
    }
    *out = v->get<double>();
  }
  auto orig = it->find("original_max_position_embeddings");
  if (orig != it->end() && !orig->is_null()) {
    if (!orig->is_number_integer() || orig->get<int64_t>() <= 0) {
      return fail("original_max_position_embeddings", "expected a positive integer");
    }
    s.original_max_position_embeddings = orig->get<int64_t>();
  }
  c->rope_scaling = s;
  return Status::Ok();
}

Status ParseTokenIds(const json& j, const ConfigReader& r, HfConfig* c) {
  if (auto bos = j.find("bos_token_id"); bos != j.end() && !bos->is_null()) {
    if (!bos->is_number_integer()) return r.Fail("bos_token_id", "expected an integer");
    c->bos_token_id = bos->get<int64_t>();
  }
  if (auto eos = j.find("eos_token_id"); eos != j.end() && !eos->is_null()) {
    if (eos->is_number_integer()) {
      c->eos_token_ids.push_back(eos->get<int64_t>());
    } else if (eos->is_array()) {
      for (const json& id : *eos) {
        if (!id.is_number_integer()) return r.Fail("eos_token_id", "expected integers");
        c->eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      return r.Fail("eos_token_id", "expected an integer or a list of integers");
    }
  }
  return Status::Ok();
}

Status ParseQuantizationConfig(const json& j, const ConfigReader& r, HfConfig* c) {
  auto it = j.find("quantization_config");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return r.Fail("quantization_config", "expected an object or null");
  const ConfigReader q(*it, r.name(), "quantization_config.");
  HfQuantizationConfig out;
  const auto fail = [&](std::string_view key, const std::string& why) { return q.Fail(key, why); };
  auto method = it->find("quant_method");
  if (method == it->end() || !method->is_string()) {
    return fail("quant_method", "missing or not a string");
  }
  out.quant_method = method->get<std::string>();
  if (out.quant_method == "aqlm") {
    for (auto [key, field] : {std::pair<const char*, int64_t*>{"in_group_size", &out.in_group_size},
                              {"out_group_size", &out.out_group_size},
                              {"num_codebooks", &out.num_codebooks},
                              {"nbits_per_codebook", &out.nbits_per_codebook}}) {
      LOWBIT_RETURN_IF_ERROR(q.PositiveInt(key, field, *field));
    }
    auto skip = it->find("linear_weights_not_to_quantize");
    if (skip != it->end() && !skip->is_null()) {
      if (!skip->is_array()) return fail("linear_weights_not_to_quantize", "expected a list");
      for (const json& s : *skip) {
        if (!s.is_string()) return fail("linear_weights_not_to_quantize", "expected strings");
        out.linear_weights_not_to_quantize.push_back(s.get<std::string>());
      }
    }
  }
  c->quantization_config = std::move(out);
  return Status::Ok();
}

}  // namespace

Result<HfConfig> ParseHfConfig(std::string_view json_text, const std::string& name) {
  if (io::JsonNestingDepth(json_text, io::kMaxJsonNesting) > io::kMaxJsonNesting) {
    return InvalidArgument(name + ": JSON nested deeper than " +
                           std::to_string(io::kMaxJsonNesting) + " levels");
  }
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return InvalidArgument(name + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) return InvalidArgument(name + ": expected a JSON object");
  HfConfig c;
  ConfigReader r(j, name);
  if (auto a = j.find("architectures"); a != j.end() && !a->is_null()) {
    if (!a->is_array()) return r.Fail("architectures", "expected a list of strings");
    for (const json& s : *a) {
      if (!s.is_string()) return r.Fail("architectures", "expected a list of strings");
      c.architectures.push_back(s.get<std::string>());
    }
  }
  LOWBIT_RETURN_IF_ERROR(r.String("model_type", &c.model_type));
  const bool qwen2 = c.model_type == "qwen2";
  LOWBIT_RETURN_IF_ERROR(r.PositiveInt("hidden_size", &c.hidden_size));
  LOWBIT_RETURN_IF_ERROR(r.PositiveInt("intermediate_size", &c.intermediate_size));
  LOWBIT_RETURN_IF_ERROR(r.PositiveInt("num_hidden_layers", &c.num_hidden_layers));
  LOWBIT_RETURN_IF_ERROR(r.PositiveInt("num_attention_heads", &c.num_attention_heads));
  LOWBIT_RETURN_IF_ERROR(
      r.PositiveInt("num_key_value_heads", &c.num_key_value_heads, c.num_attention_heads));
  LOWBIT_RETURN_IF_ERROR(r.PositiveInt("vocab_size", &c.vocab_size));
  LOWBIT_RETURN_IF_ERROR(
      r.PositiveInt("max_position_embeddings", &c.max_position_embeddings, qwen2 ? 32768 : 2048));
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    LOWBIT_RETURN_IF_ERROR(r.PositiveInt("head_dim", &c.head_dim));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return r.Fail("num_attention_heads", std::to_string(c.num_attention_heads) +
                                               " heads do not divide hidden_size " +
                                               std::to_string(c.hidden_size));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return r.Fail("num_key_value_heads", std::to_string(c.num_key_value_heads) +
                                             " KV heads do not divide " +
                                             std::to_string(c.num_attention_heads) + " heads");
  }
  LOWBIT_RETURN_IF_ERROR(r.PositiveNumber("rms_norm_eps", &c.rms_norm_eps));
  LOWBIT_RETURN_IF_ERROR(r.PositiveNumber("rope_theta", &c.rope_theta));
  LOWBIT_RETURN_IF_ERROR(ParseRopeScaling(j, r, &c));
  LOWBIT_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  // Qwen2's q/k/v projections always have a bias (transformers hard-codes it; no config key).
  c.attention_bias = qwen2;
  if (!qwen2) LOWBIT_RETURN_IF_ERROR(r.Bool("attention_bias", &c.attention_bias));
  LOWBIT_RETURN_IF_ERROR(r.String("hidden_act", &c.hidden_act));
  LOWBIT_RETURN_IF_ERROR(r.String("torch_dtype", &c.torch_dtype));
  LOWBIT_RETURN_IF_ERROR(ParseTokenIds(j, r, &c));
  LOWBIT_RETURN_IF_ERROR(ParseQuantizationConfig(j, r, &c));
  return c;
}

Result<HfConfig> LoadHfConfig(const std::string& path) {
  std::string file = path;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<const io::MappedFile> mapped, io::MappedFile::Open(file));
  const std::string_view text(reinterpret_cast<const char*>(mapped->data()),
                              static_cast<size_t>(mapped->size()));
  return ParseHfConfig(text, file);
}

}  // namespace lowbit
