// libFuzzer target: Hugging Face tokenizer.json (TokenizerFromHfJsonText, the parser behind
// TokenizerFromHfJson), with and without a tokenizer_config.json, then encode/decode sample texts.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  // Odd sizes also get a tokenizer_config.json naming special tokens the vocabulary may hold.
  constexpr std::string_view kConfig =
      R"({"bos_token": "<|endoftext|>", "eos_token": {"content": "<|im_end|>"},)"
      R"( "add_bos_token": true})";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<std::unique_ptr<Tokenizer>> tok =
      TokenizerFromHfJsonText(text, size % 2 ? kConfig : "", "fuzz/tokenizer.json");
  if (!tok.ok()) {
    fuzz::CheckError(tok.status());
    return 0;
  }
  fuzz::ExerciseTokenizer(**tok, text.substr(0, 48));
  return 0;
}
