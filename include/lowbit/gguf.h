// GGUF v2/v3 model files: a validating, memory-mapped reader and an atomic writer.
//
// File layout (GGUF spec, ggml docs/gguf.md; all integers little-endian):
//   magic "GGUF" | uint32 version (2 or 3) | uint64 tensor_count | uint64 metadata_kv_count
//   metadata_kv_count x { string key | uint32 value_type | value }
//   tensor_count x { string name | uint32 n_dims | uint64 dims[n_dims] | uint32 ggml_type |
//                    uint64 offset }
//   zero padding to `alignment` (metadata key general.alignment, uint32, default 32)
//   tensor data: each tensor at data_start + offset, offset a multiple of the alignment
// string = uint64 length + bytes (no terminator); array = uint32 element type + uint64 count +
// elements. dims are in ggml order: dims[0] (ne0) is the row length (contiguous), so a tensor is
// a row-major (rows = product of dims[1..], cols = dims[0]) matrix.
//
// Tensor types map to lowbit Formats through the registry (every preset whose format reports a
// gguf_type()). lowbit's own formats, which have no ggml type, are stored with the private type id
// kLowbitGgufType and the metadata key "lowbit.tensor_format.<tensor name>" holding the canonical
// format spec; other GGUF readers will refuse such tensors, lowbit resolves them via the registry.
//
// Everything read from a file is validated before use (counts, lengths, dims, types, offsets,
// alignment, overlap, file size); errors are Status values (kDataLoss for malformed files,
// kInvalidArgument for well-formed files lowbit cannot represent) whose message reads
// "FILE: field 'X' at offset N: reason". See docs/io.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

// GGUF metadata value types, with their ids from the spec (gguf_metadata_value_type).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint8", "float32", "array", ...; "type#<id>" for ids outside the enum.
std::string_view GgufTypeName(GgufType type);
// Byte size of a numeric or bool value (0 for kString / kArray and unknown ids).
int GgufTypeSize(GgufType type);
bool GgufTypeIsInteger(GgufType type);
bool GgufTypeIsFloat(GgufType type);

// The ggml_type id lowbit writes for formats that have no ggml type (far above ggml's ids).
constexpr uint32_t kLowbitGgufType = 1024;
// Metadata key prefix naming the spec of a kLowbitGgufType tensor: prefix + tensor name.
inline constexpr std::string_view kLowbitTensorFormatKeyPrefix = "lowbit.tensor_format.";
// Version written by GgufWriter; versions read: 2 and 3 (v1 used 32-bit counts and is rejected).
constexpr uint32_t kGgufWriteVersion = 3;
constexpr uint64_t kGgufDefaultAlignment = 32;
// ggml's GGML_MAX_DIMS: tensors have 1..4 dims.
constexpr int kGgufMaxDims = 4;
// Nested arrays (arrays of arrays) are allowed by the spec; lowbit reads them up to this depth.
constexpr int kGgufMaxArrayDepth = 8;

// One metadata value. Numeric payloads keep the file's little-endian bytes, so a file read and
// written again is byte-identical (NaN payloads included); use the accessors to get numbers.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  uint64_t scalar_bits = 0;  // numeric/bool scalars: the value's bytes, zero-extended
  std::string string;        // kString

  // kArray: element type and count, and exactly one payload in use:
  GgufType array_type = GgufType::kUint8;
  uint64_t array_size = 0;
  std::vector<uint8_t> array_bytes;        // numeric/bool elements: array_size * size, packed
  std::vector<std::string> array_strings;  // kString elements
  std::vector<GgufValue> array_items;      // kArray elements (nested arrays)

  static GgufValue Uint8(uint8_t v);
  static GgufValue Int8(int8_t v);
  static GgufValue Uint16(uint16_t v);
  static GgufValue Int16(int16_t v);
  static GgufValue Uint32(uint32_t v);
  static GgufValue Int32(int32_t v);
  static GgufValue Uint64(uint64_t v);
  static GgufValue Int64(int64_t v);
  static GgufValue Float32(float v);
  static GgufValue Float64(double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  // Numeric arrays: element type and its packed little-endian bytes (count * size bytes).
  static GgufValue NumericArray(GgufType element_type, std::span<const uint8_t> bytes);
  static GgufValue Float32Array(std::span<const float> v);
  static GgufValue Int32Array(std::span<const int32_t> v);
  static GgufValue Uint32Array(std::span<const uint32_t> v);
  static GgufValue Int64Array(std::span<const int64_t> v);
  static GgufValue BoolArray(const std::vector<bool>& v);
  static GgufValue StringArray(std::vector<std::string> v);
  // Array of arrays (each item must itself be a kArray value).
  static GgufValue ArrayOfArrays(std::vector<GgufValue> items);

  bool is_integer() const { return GgufTypeIsInteger(type); }
  bool is_float() const { return GgufTypeIsFloat(type); }
  // Integer scalars as int64 (false for uint64 values above INT64_MAX or non-integers).
  bool ToInt(int64_t* out) const;
  // Float or integer scalars as double (exact for float32, float64 and |ints| < 2^53).
  bool ToDouble(double* out) const;
  // Array element i of a numeric array (integer / float element types, bool as 0/1).
  bool IntAt(uint64_t i, int64_t* out) const;
  bool DoubleAt(uint64_t i, double* out) const;
  // Short human-readable form for inspection ("uint32 5", "array<string>[512] [\"<unk>\", ...]").
  std::string DebugString(size_t max_items = 8) const;
  // Structural equality (type, payload bytes, element types), as written to a file.
  bool operator==(const GgufValue& other) const;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
  uint64_t file_offset = 0;  // offset of the key in the file (0 for values made in memory)
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] = ne0 = row length (cols)
  uint32_t ggml_type = 0;
  uint64_t offset = 0;            // relative to the data section, a multiple of the alignment
  FormatPtr format;               // the registry format for ggml_type (or the lowbit spec)
  int64_t rows = 0, cols = 0;     // cols = dims[0], rows = product of the rest
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives
  uint64_t n_bytes = 0;           // == format->PackedBytes(rows, cols)
};

class GgufFile {
 public:
  // Maps the file read-only and validates the whole header and tensor table.
  static Result<GgufFile> Open(const std::string& path);
  // Same, over bytes in memory (tests, fuzzing): `name` stands for the file in messages.
  static Result<GgufFile> FromBytes(std::vector<uint8_t> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: NotFound when the key is missing, InvalidArgument when it has another type;
  // the message names the file and key. The *Or forms return default_value for a missing key.
  Result<int64_t> GetInt(std::string_view key) const;  // any integer type
  Result<int64_t> GetIntOr(std::string_view key, int64_t default_value) const;
  Result<double> GetFloat(std::string_view key) const;  // float32/float64 (or an integer)
  Result<double> GetFloatOr(std::string_view key, double default_value) const;
  Result<bool> GetBool(std::string_view key) const;
  Result<std::string> GetString(std::string_view key) const;
  Result<std::string> GetStringOr(std::string_view key, std::string_view default_value) const;
  // Views into the metadata (valid while this GgufFile lives).
  Result<std::span<const std::string>> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetFloatArray(std::string_view key) const;  // float32/float64 arrays
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // integer arrays

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::string path_;
  // The bytes (a read-only mapping or an owned buffer); tensor data points into them, so moving
  // a GgufFile keeps every pointer valid.
  std::shared_ptr<const void> storage_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF file in memory order and writes it atomically.
//
// Metadata keys keep the order of their first SetValue; tensors are laid out in AddTensor order,
// each at the next multiple of the alignment (general.alignment if set, else 32), padding zeroed.
class GgufWriter {
 public:
  GgufWriter() = default;
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Sets (or replaces, keeping its position) a metadata value.
  void SetValue(std::string key, GgufValue value);
  void SetUint32(std::string key, uint32_t v) { SetValue(std::move(key), GgufValue::Uint32(v)); }
  void SetInt32(std::string key, int32_t v) { SetValue(std::move(key), GgufValue::Int32(v)); }
  void SetUint64(std::string key, uint64_t v) { SetValue(std::move(key), GgufValue::Uint64(v)); }
  void SetFloat32(std::string key, float v) { SetValue(std::move(key), GgufValue::Float32(v)); }
  void SetBool(std::string key, bool v) { SetValue(std::move(key), GgufValue::Bool(v)); }
  void SetString(std::string key, std::string v) {
    SetValue(std::move(key), GgufValue::String(std::move(v)));
  }
  void SetStringArray(std::string key, std::vector<std::string> v) {
    SetValue(std::move(key), GgufValue::StringArray(std::move(v)));
  }
  void SetFloat32Array(std::string key, std::span<const float> v) {
    SetValue(std::move(key), GgufValue::Float32Array(v));
  }
  void SetInt32Array(std::string key, std::span<const int32_t> v) {
    SetValue(std::move(key), GgufValue::Int32Array(v));
  }
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }

  // Adds a tensor; dims in GGUF order (dims[0] = cols). bytes must hold exactly
  // format->PackedBytes(rows, cols). AddTensor copies the bytes; AddTensorView keeps a view that
  // must stay valid until WriteAtomic returns. Formats without a ggml type also set the metadata
  // key "lowbit.tensor_format.<name>".
  Status AddTensor(std::string name, std::vector<int64_t> dims, FormatPtr format,
                   std::span<const uint8_t> bytes);
  Status AddTensorView(std::string name, std::vector<int64_t> dims, FormatPtr format,
                       std::span<const uint8_t> bytes);

  // Writes the file: a temporary file next to path, fsync, rename over path. On failure nothing is
  // left behind (an existing file at path is untouched).
  Status WriteAtomic(const std::string& path) const;
  // The exact bytes WriteAtomic would write (tests, small files).
  Result<std::vector<uint8_t>> Serialize() const;

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> dims;
    FormatPtr format;
    uint32_t ggml_type = 0;
    std::vector<uint8_t> owned;
    std::span<const uint8_t> bytes;
  };
  Status AddTensorImpl(std::string name, std::vector<int64_t> dims, FormatPtr format,
                       std::span<const uint8_t> bytes, bool copy);
  Result<uint64_t> Alignment() const;

  std::vector<GgufKeyValue> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<std::unique_ptr<PendingTensor>> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// ggml type id -> registry format, built once from every preset that reports a gguf_type().
// nullptr when no lowbit format has that id.
FormatPtr FormatForGgmlType(uint32_t ggml_type);
// ggml's name for a type id ("F32", "Q4_K", ...), "type <id>" when unknown (for messages).
std::string GgmlTypeName(uint32_t ggml_type);

}  // namespace lowbit
