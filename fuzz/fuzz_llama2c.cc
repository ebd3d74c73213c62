// libFuzzer target: llama2.c checkpoints (LoadLlama2cFromBytes, the parser behind LoadLlama2c),
// then one forward step on models that load.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  Result<LlamaModel> model = LoadLlama2cFromBytes(std::vector<uint8_t>(data, data + size), "fuzz.bin");
  if (!model.ok()) {
    fuzz::CheckError(model.status());
    return 0;
  }
  fuzz::ExerciseModel(*model);
  return 0;
}
