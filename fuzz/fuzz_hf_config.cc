// libFuzzer target: Hugging Face config.json (ParseHfConfig, the parser behind LoadHfConfig).
#include "fuzz_common.h"
#include "lowbit/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  Result<HfConfig> c =
      ParseHfConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  if (!c.ok()) {
    fuzz::CheckError(c.status());
    return 0;
  }
  FUZZ_CHECK(c->hidden_size > 0 && c->intermediate_size > 0 && c->num_hidden_layers > 0);
  FUZZ_CHECK(c->num_attention_heads > 0 && c->num_key_value_heads > 0 && c->head_dim > 0);
  FUZZ_CHECK(c->vocab_size > 0 && c->max_position_embeddings > 0);
  FUZZ_CHECK(c->num_attention_heads % c->num_key_value_heads == 0);
  FUZZ_CHECK(c->rms_norm_eps > 0 && c->rope_theta > 0);
  return 0;
}
