// libFuzzer target: GGUF files (GgufFile::FromBytes, the same parser as GgufFile::Open), then every
// metadata getter, every tensor's metadata and bytes, and LoadFromGguf on the parsed file.
#include <algorithm>
#include <memory>

#include "fuzz_common.h"
#include "lowbit/gguf.h"

namespace lowbit::fuzz {
namespace {

void ExerciseMetadata(const GgufFile& f) {
  for (const GgufKeyValue& kv : f.metadata()) {
    FUZZ_CHECK(f.Find(kv.key) == &kv.value);
    (void)kv.value.DebugString();
    (void)f.GetInt(kv.key);
    (void)f.GetFloat(kv.key);
    (void)f.GetBool(kv.key);
    (void)f.GetString(kv.key);
    (void)f.GetStringArray(kv.key);
    (void)f.GetFloatArray(kv.key);
    (void)f.GetIntArray(kv.key);
  }
}

void ExerciseTensors(const GgufFile& f) {
  std::vector<float> row;
  const uint64_t data_size = f.file_size() - f.data_offset();
  for (const GgufTensor& t : f.tensors()) {
    FUZZ_CHECK(f.FindTensor(t.name) == &t);
    FUZZ_CHECK(t.format != nullptr && t.data != nullptr);
    FUZZ_CHECK(t.rows >= 1 && t.cols >= 1 && t.cols == t.dims[0]);
    FUZZ_CHECK(static_cast<int64_t>(t.n_bytes) == t.format->PackedBytes(t.rows, t.cols));
    FUZZ_CHECK(t.offset <= data_size && t.n_bytes <= data_size - t.offset);
    (void)t.format->spec();
    // Decode the first and last row (the whole tensor when small): ASan checks that decoding
    // reads only the n_bytes the reader validated.
    if (t.cols > (int64_t{1} << 20)) continue;
    row.resize(static_cast<size_t>(t.cols));
    const int64_t last = t.rows - 1;
    const int64_t first_rows = t.rows * t.cols <= (int64_t{1} << 16) ? t.rows : 1;
    for (int64_t r = 0; r < first_rows; ++r) {
      t.format->DequantizeRows(t.data, t.rows, t.cols, r, r + 1, row.data());
    }
    if (last >= first_rows) t.format->DequantizeRows(t.data, t.rows, t.cols, last, last + 1, row.data());
  }
}

}  // namespace
}  // namespace lowbit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  Result<GgufFile> parsed = GgufFile::FromBytes(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
  if (!parsed.ok()) {
    fuzz::CheckError(parsed.status());
    return 0;
  }
  auto file = std::make_shared<const GgufFile>(std::move(parsed).value());
  FUZZ_CHECK(file->data_offset() % file->alignment() == 0);
  fuzz::ExerciseMetadata(*file);
  fuzz::ExerciseTensors(*file);
  Result<LlamaModel> model = LoadFromGguf(file);
  if (!model.ok()) {
    fuzz::CheckError(model.status());
    return 0;
  }
  fuzz::ExerciseModel(*model);
  return 0;
}
