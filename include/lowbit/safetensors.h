// safetensors files and Hugging Face checkpoint folders: a validating, memory-mapped reader and an
// atomic writer.
//
// File layout (safetensors format, huggingface/safetensors README):
//   uint64 N (little-endian) | N bytes of UTF-8 JSON header | data
// The header is a JSON object: an optional "__metadata__" object of string -> string, and one entry
// per tensor: {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, offsets
// relative to the start of the data. Tensors are row-major in numpy order: shape.back() is the
// contiguous dimension (the opposite of GGUF's dims order).
//
// Validation (the reference implementation's rules): N fits the file and is at most 100 MiB, the
// header is a JSON object, dtypes are known, shapes are non-negative and their byte size does not
// overflow, end - begin == elements * dtype size, and the tensors cover the data exactly (sorted by
// offset each starts where the previous ended; no overlap, no hole, nothing past the end). Errors
// are kDataLoss Status values naming the file and field.
//
// Folders: "model.safetensors" (single file) or "model.safetensors.index.json" with a "weight_map"
// {tensor name -> shard file name} (sharded). Shard names must be plain file names in the folder.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

// The safetensors dtypes, with their byte sizes.
enum class SafetensorsDtype {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBf16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};
std::string_view SafetensorsDtypeName(SafetensorsDtype dtype);  // "F32", "BF16", ...
int SafetensorsDtypeSize(SafetensorsDtype dtype);
std::optional<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name);
// The float-family format for F32 / F16 / BF16; nullptr for other dtypes.
FormatPtr FormatForSafetensorsDtype(SafetensorsDtype dtype);
// The dtype that stores a float-family format; nullopt for every other format.
std::optional<SafetensorsDtype> SafetensorsDtypeForFormat(const Format& format);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;     // numpy order: shape.back() is the row length
  FormatPtr format;               // float family for F32/F16/BF16, nullptr for other dtypes
  int64_t rows = 0, cols = 0;     // cols = shape.back() (1 for a scalar), rows = elements / cols
                                  // (0 when cols == 0)
  uint64_t offset = 0;            // data_offsets[0], relative to the data section
  const uint8_t* data = nullptr;  // valid while the owning file / model lives
  uint64_t n_bytes = 0;
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);
  static Result<SafetensorsFile> FromBytes(std::vector<uint8_t> bytes,
                                           std::string name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // "__metadata__" (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In data order (ascending offset).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* FindTensor(std::string_view name) const;
  uint64_t data_offset() const { return data_offset_; }  // 8 + N

 private:
  SafetensorsFile() = default;
  static Result<SafetensorsFile> Parse(SafetensorsFile file);

  std::string path_;
  std::shared_ptr<const void> storage_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// A Hugging Face checkpoint folder (config.json and tokenizer files are read elsewhere).
class SafetensorsModel {
 public:
  // folder holds model.safetensors, or model.safetensors.index.json and its shards.
  static Result<SafetensorsModel> Open(const std::string& folder);

  SafetensorsModel(SafetensorsModel&&) noexcept = default;
  SafetensorsModel& operator=(SafetensorsModel&&) noexcept = default;

  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // Every tensor of every shard, shard by shard in data order.
  const std::vector<const SafetensorsTensor*>& tensors() const { return tensors_; }
  const SafetensorsTensor* FindTensor(std::string_view name) const;
  // The index's "metadata" (string and number values as text); a single file's __metadata__.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsModel() = default;
  std::vector<SafetensorsFile> shards_;
  std::vector<const SafetensorsTensor*> tensors_;
  std::map<std::string, const SafetensorsTensor*, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Builds one safetensors file; tensors are stored in AddTensor order, the header padded with
// spaces to a multiple of 8 bytes so the data section is 8-byte aligned.
class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void SetMetadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }
  // shape in numpy order; bytes must hold exactly product(shape) * dtype size. AddTensor copies,
  // AddTensorView keeps a view that must stay valid until WriteAtomic/Serialize returns.
  Status AddTensor(std::string name, std::vector<int64_t> shape, SafetensorsDtype dtype,
                   std::span<const uint8_t> bytes);
  Status AddTensorView(std::string name, std::vector<int64_t> shape, SafetensorsDtype dtype,
                       std::span<const uint8_t> bytes);
  // Float-family formats only (f32, f16, bf16): the packed bytes are the dtype's bytes.
  Status AddTensor(std::string name, std::vector<int64_t> shape, const Format& format,
                   std::span<const uint8_t> bytes);

  Status WriteAtomic(const std::string& path) const;
  Result<std::vector<uint8_t>> Serialize() const;

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> shape;
    SafetensorsDtype dtype;
    std::vector<uint8_t> owned;
    std::span<const uint8_t> bytes;
  };
  Status Add(std::string name, std::vector<int64_t> shape, SafetensorsDtype dtype,
             std::span<const uint8_t> bytes, bool copy);
  std::string Header() const;

  std::map<std::string, std::string> metadata_;
  std::vector<std::unique_ptr<PendingTensor>> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace lowbit
