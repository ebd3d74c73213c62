// libFuzzer target: safetensors files (SafetensorsFile::FromBytes, the parser behind Open): the
// 8-byte header length, the JSON header, dtypes, shapes and data offsets.
#include "fuzz_common.h"
#include "lowbit/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  Result<SafetensorsFile> file =
      SafetensorsFile::FromBytes(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  if (!file.ok()) {
    fuzz::CheckError(file.status());
    return 0;
  }
  const uint64_t data_size = size - file->data_offset();
  uint64_t covered = 0;
  std::vector<float> row;
  for (const SafetensorsTensor& t : file->tensors()) {
    FUZZ_CHECK(file->FindTensor(t.name) != nullptr);
    FUZZ_CHECK(t.offset <= data_size && t.n_bytes <= data_size - t.offset);
    FUZZ_CHECK(t.offset == covered);  // tensors tile the data section
    covered += t.n_bytes;
    FUZZ_CHECK(t.rows >= 0 && t.cols >= 0);
    if (t.format != nullptr && t.rows > 0 && t.cols > 0 && t.cols <= (int64_t{1} << 20)) {
      FUZZ_CHECK(static_cast<int64_t>(t.n_bytes) == t.format->PackedBytes(t.rows, t.cols));
      row.resize(static_cast<size_t>(t.cols));
      t.format->DequantizeRows(t.data, t.rows, t.cols, t.rows - 1, t.rows, row.data());
    }
  }
  FUZZ_CHECK(covered == data_size);
  return 0;
}
