// libFuzzer target: GGUF tokenizer metadata (tokenizer.ggml.*) -> TokenizerFromGguf, then encode and
// decode sample texts and the input's last bytes.
#include "fuzz_common.h"
#include "lowbit/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  Result<GgufFile> file = GgufFile::FromBytes(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
  if (!file.ok()) {
    fuzz::CheckError(file.status());
    return 0;
  }
  Result<std::unique_ptr<Tokenizer>> tok = TokenizerFromGguf(*file);
  if (!tok.ok()) {
    fuzz::CheckError(tok.status());
    return 0;
  }
  const size_t tail = size < 48 ? size : 48;
  fuzz::ExerciseTokenizer(**tok, std::string_view(reinterpret_cast<const char*>(data) + size - tail, tail));
  return 0;
}
