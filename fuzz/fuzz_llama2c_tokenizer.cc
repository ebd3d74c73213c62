// libFuzzer target: llama2.c tokenizer files (TokenizerFromLlama2cBytes, the parser behind
// TokenizerFromLlama2cFile), read to the end of the input, then encode/decode sample texts.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Result<std::unique_ptr<Tokenizer>> tok = TokenizerFromLlama2cBytes(bytes, "fuzz.bin");
  if (!tok.ok()) {
    fuzz::CheckError(tok.status());
    return 0;
  }
  const size_t tail = size < 48 ? size : 48;
  fuzz::ExerciseTokenizer(**tok, bytes.substr(size - tail));
  return 0;
}
