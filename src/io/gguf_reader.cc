// GGUF reader: parses and validates the header, metadata and tensor table of a mapped file.
//
// Hostile input rule: every count, length, dim, type and offset is checked against the bytes that
// remain in the file (and for overflow) before anything is allocated or read, so a file can never
// make the reader allocate more than a small multiple of its own size or read outside it.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "io/file_io.h"
#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"

namespace lowbit {
namespace {

// Smallest encodings, used to bound counts before allocating: a metadata pair needs a key length,
// a 1-byte key, a type and a 1-byte value; a tensor info a name length, a 1-byte name, n_dims,
// one dim, a type and an offset.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
// Per element of an array: strings need their 8-byte length, nested arrays type + count.
constexpr uint64_t kMinStringBytes = 8;
constexpr uint64_t kMinArrayBytes = 4 + 8;
// GGUF spec: keys are at most 2^16 - 1 bytes.
constexpr uint64_t kMaxKeyBytes = 65535;
// Far above any real tensor (10^15 weights), small enough that PackedBytes cannot overflow int64
// for formats of up to 64 bits per weight.
constexpr int64_t kMaxTensorElements = int64_t{1} << 50;

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};

std::string Str(uint64_t v) { return std::to_string(v); }

}  // namespace

// Reads one GGUF image into a GgufFile. Members are filled in as they validate.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : f_(file), base_(file.base_), size_(file.size_) {}

  Status Parse() {
    LOWBIT_RETURN_IF_ERROR(ParseHeader());
    LOWBIT_RETURN_IF_ERROR(ParseMetadata());
    LOWBIT_RETURN_IF_ERROR(ParseAlignment());
    LOWBIT_RETURN_IF_ERROR(ParseTensorInfos());
    return PlaceTensors();
  }

 private:
  Status Fail(const std::string& field, uint64_t at, const std::string& reason,
              StatusCode code = StatusCode::kDataLoss) const {
    return Status(code, f_.path_ + ": field '" + field + "' at offset " + Str(at) + ": " + reason);
  }
  uint64_t remaining() const { return size_ - pos_; }

  Status Need(const std::string& field, uint64_t n) const {
    if (n > remaining()) {
      return Fail(field, pos_,
                  "needs " + Str(n) + " bytes but only " + Str(remaining()) +
                      " remain (file truncated at " + Str(size_) + " bytes)");
    }
    return Status::Ok();
  }

  template <class T>
  Status Read(const std::string& field, T* out) {
    LOWBIT_RETURN_IF_ERROR(Need(field, sizeof(T)));
    std::memcpy(out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(const std::string& field, std::string* out, uint64_t max_len = UINT64_MAX) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    LOWBIT_RETURN_IF_ERROR(Read(field + " length", &len));
    if (len > remaining()) {
      return Fail(field + " length", at,
                  "string of " + Str(len) + " bytes runs past the end of the file (" +
                      Str(remaining()) + " bytes remain)");
    }
    if (len > max_len) {
      return Fail(field + " length", at, Str(len) + " bytes exceeds the limit of " + Str(max_len));
    }
    out->assign(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return Status::Ok();
  }

  Status ReadType(const std::string& field, GgufType* out) {
    const uint64_t at = pos_;
    uint32_t id = 0;
    LOWBIT_RETURN_IF_ERROR(Read(field, &id));
    if (id > static_cast<uint32_t>(GgufType::kFloat64)) {
      return Fail(field, at, "unknown value type " + Str(id) + " (GGUF types are 0..12)");
    }
    *out = static_cast<GgufType>(id);
    return Status::Ok();
  }

  Status ReadValue(const std::string& field, GgufType type, int depth, GgufValue* out) {
    out->type = type;
    const uint64_t at = pos_;
    if (type == GgufType::kString) return ReadString(field, &out->string);
    if (type != GgufType::kArray) {
      const int size = GgufTypeSize(type);
      LOWBIT_RETURN_IF_ERROR(Need(field, static_cast<uint64_t>(size)));
      std::memcpy(&out->scalar_bits, base_ + pos_, static_cast<size_t>(size));
      if (type == GgufType::kBool && out->scalar_bits > 1) {
        return Fail(field, at, "bool value " + Str(out->scalar_bits) + " is not 0 or 1");
      }
      pos_ += static_cast<uint64_t>(size);
      return Status::Ok();
    }
    if (depth >= kGgufMaxArrayDepth) {
      return Fail(field, at, "arrays nested deeper than " + Str(kGgufMaxArrayDepth) + " levels");
    }
    LOWBIT_RETURN_IF_ERROR(ReadType(field + " element type", &out->array_type));
    const uint64_t count_at = pos_;
    LOWBIT_RETURN_IF_ERROR(Read(field + " element count", &out->array_size));
    const uint64_t n = out->array_size;
    const int size = GgufTypeSize(out->array_type);
    const uint64_t min_elem = size > 0                               ? static_cast<uint64_t>(size)
                              : out->array_type == GgufType::kString ? kMinStringBytes
                                                                     : kMinArrayBytes;
    if (n > remaining() / min_elem) {
      return Fail(field + " element count", count_at,
                  Str(n) + " elements of " + std::string(GgufTypeName(out->array_type)) +
                      " cannot fit in the " + Str(remaining()) + " bytes that remain");
    }
    if (size > 0) {
      const uint64_t n_bytes = n * static_cast<uint64_t>(size);
      out->array_bytes.assign(base_ + pos_, base_ + pos_ + n_bytes);
      if (out->array_type == GgufType::kBool) {
        for (uint64_t i = 0; i < n; ++i) {
          if (out->array_bytes[i] > 1) {
            return Fail(field + "[" + Str(i) + "]", pos_ + i,
                        "bool value " + Str(out->array_bytes[i]) + " is not 0 or 1");
          }
        }
      }
      pos_ += n_bytes;
      return Status::Ok();
    }
    if (out->array_type == GgufType::kString) {
      out->array_strings.resize(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) {
        LOWBIT_RETURN_IF_ERROR(
            ReadString(field + "[" + Str(i) + "]", &out->array_strings[static_cast<size_t>(i)]));
      }
      return Status::Ok();
    }
    out->array_items.resize(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      LOWBIT_RETURN_IF_ERROR(ReadValue(field + "[" + Str(i) + "]", GgufType::kArray, depth + 1,
                                       &out->array_items[static_cast<size_t>(i)]));
    }
    return Status::Ok();
  }

  Status ParseHeader() {
    if (size_ < 4) {
      return Fail("magic", 0, "file is " + Str(size_) + " bytes, too short to be a GGUF file");
    }
    if (std::memcmp(base_, kMagic, 4) != 0) {
      char got[32];
      std::snprintf(got, sizeof(got), "%02x %02x %02x %02x", base_[0], base_[1], base_[2],
                    base_[3]);
      return Fail("magic", 0, std::string("expected \"GGUF\" (47 47 55 46), got ") + got);
    }
    pos_ = 4;
    uint32_t version = 0;
    LOWBIT_RETURN_IF_ERROR(Read("version", &version));
    if (version == 1) {
      return Fail("version", 4, "GGUF v1 (32-bit counts) is not supported; convert to v3",
                  StatusCode::kInvalidArgument);
    }
    if (version == 0x02000000u || version == 0x03000000u) {
      return Fail("version", 4, "big-endian GGUF is not supported", StatusCode::kInvalidArgument);
    }
    if (version != 2 && version != 3) {
      return Fail("version", 4, "unsupported version " + Str(version) + " (lowbit reads 2 and 3)");
    }
    f_.version_ = version;
    const uint64_t tensors_at = pos_;
    LOWBIT_RETURN_IF_ERROR(Read("tensor_count", &tensor_count_));
    const uint64_t kvs_at = pos_;
    LOWBIT_RETURN_IF_ERROR(Read("metadata_kv_count", &kv_count_));
    // Both tables follow; each entry has a minimum size, so the counts are bounded by the file.
    if (tensor_count_ > remaining() / kMinTensorInfoBytes) {
      return Fail("tensor_count", tensors_at,
                  Str(tensor_count_) + " tensors cannot fit in the " + Str(remaining()) +
                      " bytes that remain (each tensor info needs at least " +
                      Str(kMinTensorInfoBytes) + ")");
    }
    if (kv_count_ > (remaining() - tensor_count_ * kMinTensorInfoBytes) / kMinKvBytes) {
      return Fail("metadata_kv_count", kvs_at,
                  Str(kv_count_) + " metadata entries cannot fit in the " + Str(remaining()) +
                      " bytes that remain (each needs at least " + Str(kMinKvBytes) + ")");
    }
    return Status::Ok();
  }

  Status ParseMetadata() {
    f_.metadata_.reserve(static_cast<size_t>(kv_count_));
    for (uint64_t i = 0; i < kv_count_; ++i) {
      GgufKeyValue kv;
      kv.file_offset = pos_;
      const std::string field = "metadata[" + Str(i) + "] key";
      LOWBIT_RETURN_IF_ERROR(ReadString(field, &kv.key, kMaxKeyBytes));
      if (kv.key.empty()) return Fail(field, kv.file_offset, "empty key");
      if (f_.metadata_index_.count(kv.key)) {
        return Fail(kv.key, kv.file_offset, "duplicate metadata key");
      }
      GgufType type;
      LOWBIT_RETURN_IF_ERROR(ReadType(kv.key + " type", &type));
      LOWBIT_RETURN_IF_ERROR(ReadValue(kv.key, type, 0, &kv.value));
      f_.metadata_index_.emplace(kv.key, f_.metadata_.size());
      f_.metadata_.push_back(std::move(kv));
    }
    return Status::Ok();
  }

  Status ParseAlignment() {
    auto it = f_.metadata_index_.find("general.alignment");
    if (it == f_.metadata_index_.end()) return Status::Ok();
    const GgufKeyValue& kv = f_.metadata_[it->second];
    if (kv.value.type != GgufType::kUint32) {
      return Fail("general.alignment", kv.file_offset,
                  "must be uint32, got " + std::string(GgufTypeName(kv.value.type)));
    }
    const uint64_t a = kv.value.scalar_bits;
    if (a == 0 || (a & (a - 1)) != 0) {
      return Fail("general.alignment", kv.file_offset, Str(a) + " is not a power of two");
    }
    f_.alignment_ = a;
    return Status::Ok();
  }

  Status ResolveFormat(const std::string& field, uint64_t at, GgufTensor* t) {
    if (t->ggml_type == kLowbitGgufType) {
      const std::string key = std::string(kLowbitTensorFormatKeyPrefix) + t->name;
      const GgufValue* spec = f_.Find(key);
      if (spec == nullptr || spec->type != GgufType::kString) {
        return Fail(field + " type", at,
                    "lowbit tensor type " + Str(kLowbitGgufType) + " needs the string key '" + key +
                        "'" + (spec == nullptr ? ", which is missing" : ", which is not a string"));
      }
      Result<FormatPtr> f = ParseFormat(spec->string);
      if (!f.ok()) {
        return Fail(key, at, "not a valid format spec: " + f.status().message());
      }
      t->format = *f;
      return Status::Ok();
    }
    t->format = FormatForGgmlType(t->ggml_type);
    if (t->format == nullptr) {
      const std::string name = GgmlTypeName(t->ggml_type);
      const bool known = name.rfind("type ", 0) != 0;
      return Fail(field + " type", at,
                  "tensor '" + t->name + "' has " +
                      (known ? "ggml type " + Str(t->ggml_type) + " (" + name +
                                   "), which no lowbit format implements"
                             : "unknown ggml type id " + Str(t->ggml_type)),
                  known ? StatusCode::kInvalidArgument : StatusCode::kDataLoss);
    }
    // ggml stores whole blocks only: a row must hold a whole number of blocks.
    const int64_t b = t->format->block_size();
    if (b > 1 && t->cols % b != 0) {
      return Fail(field + " dims[0]", at,
                  "tensor '" + t->name + "': row length " + Str(t->cols) +
                      " is not a multiple of " + GgmlTypeName(t->ggml_type) + "'s block of " +
                      Str(b));
    }
    return Status::Ok();
  }

  Status ParseTensorInfos() {
    f_.tensors_.reserve(static_cast<size_t>(tensor_count_));
    offset_fields_.reserve(static_cast<size_t>(tensor_count_));
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      GgufTensor t;
      const uint64_t at = pos_;
      std::string field = "tensor[" + Str(i) + "] name";
      LOWBIT_RETURN_IF_ERROR(ReadString(field, &t.name, kMaxKeyBytes));
      if (t.name.empty()) return Fail(field, at, "empty tensor name");
      if (f_.tensor_index_.count(t.name)) {
        return Fail(field, at, "duplicate tensor name '" + t.name + "'");
      }
      field = "tensor[" + Str(i) + "] '" + t.name + "'";
      const uint64_t n_dims_at = pos_;
      uint32_t n_dims = 0;
      LOWBIT_RETURN_IF_ERROR(Read(field + " n_dims", &n_dims));
      if (n_dims < 1 || n_dims > static_cast<uint32_t>(kGgufMaxDims)) {
        return Fail(field + " n_dims", n_dims_at,
                    Str(n_dims) + " dims (lowbit reads 1.." + Str(kGgufMaxDims) + ")");
      }
      int64_t elements = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const std::string dim_field = field + " dims[" + Str(d) + "]";
        const uint64_t dim_at = pos_;
        uint64_t dim = 0;
        LOWBIT_RETURN_IF_ERROR(Read(dim_field, &dim));
        if (dim == 0) return Fail(dim_field, dim_at, "dimension is 0");
        if (dim > static_cast<uint64_t>(kMaxTensorElements) ||
            elements > kMaxTensorElements / static_cast<int64_t>(dim)) {
          return Fail(dim_field, dim_at,
                      "dimension " + Str(dim) + " makes the element count exceed 2^50");
        }
        elements *= static_cast<int64_t>(dim);
        t.dims.push_back(static_cast<int64_t>(dim));
      }
      t.cols = t.dims[0];
      t.rows = elements / t.cols;
      const uint64_t type_at = pos_;
      LOWBIT_RETURN_IF_ERROR(Read(field + " type", &t.ggml_type));
      const uint64_t offset_at = pos_;
      LOWBIT_RETURN_IF_ERROR(Read(field + " offset", &t.offset));
      LOWBIT_RETURN_IF_ERROR(ResolveFormat(field, type_at, &t));
      const int64_t n_bytes = t.format->PackedBytes(t.rows, t.cols);
      if (n_bytes <= 0) {
        return Fail(field + " dims", n_dims_at,
                    "format " + t.format->spec() + " gives " + Str(static_cast<uint64_t>(n_bytes)) +
                        " bytes");
      }
      t.n_bytes = static_cast<uint64_t>(n_bytes);
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      f_.tensors_.push_back(std::move(t));
      offset_fields_.push_back(offset_at);
    }
    return Status::Ok();
  }

  Status PlaceTensors() {
    const uint64_t a = f_.alignment_;
    uint64_t data_offset = 0;
    if (!io::AlignUp(pos_, a, &data_offset)) {
      return Fail("general.alignment", pos_, "data section offset overflows");
    }
    f_.data_offset_ = data_offset;
    if (f_.tensors_.empty()) return Status::Ok();
    if (data_offset > size_) {
      return Fail("tensor data", pos_,
                  "the data section would start at " + Str(data_offset) +
                      ", past the end of the file (" + Str(size_) + " bytes)");
    }
    const uint64_t data_size = size_ - data_offset;
    for (size_t i = 0; i < f_.tensors_.size(); ++i) {
      GgufTensor& t = f_.tensors_[i];
      const std::string field = "tensor[" + Str(i) + "] '" + t.name + "' offset";
      if (t.offset % a != 0) {
        return Fail(field, offset_fields_[i],
                    Str(t.offset) + " is not a multiple of the alignment " + Str(a));
      }
      if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
        return Fail(field, offset_fields_[i],
                    Str(t.n_bytes) + " bytes at data offset " + Str(t.offset) +
                        " run past the end of the file (the data section holds " + Str(data_size) +
                        " bytes)");
      }
      t.data = base_ + data_offset + t.offset;
    }
    std::vector<size_t> order(f_.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return f_.tensors_[x].offset < f_.tensors_[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensor& prev = f_.tensors_[order[k - 1]];
      const GgufTensor& cur = f_.tensors_[order[k]];
      if (prev.offset + prev.n_bytes > cur.offset) {
        return Fail("tensor[" + Str(order[k]) + "] '" + cur.name + "' offset",
                    offset_fields_[order[k]],
                    "data [" + Str(cur.offset) + ", " + Str(cur.offset + cur.n_bytes) +
                        ") overlaps tensor '" + prev.name + "' at [" + Str(prev.offset) + ", " +
                        Str(prev.offset + prev.n_bytes) + ")");
      }
    }
    return Status::Ok();
  }

  GgufFile& f_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::vector<uint64_t> offset_fields_;  // file position of each tensor's offset field
};

Result<GgufFile> GgufFile::Open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<const io::MappedFile> mapped, io::MappedFile::Open(path));
  GgufFile file;
  file.path_ = path;
  file.base_ = mapped->data();
  file.size_ = mapped->size();
  file.storage_ = std::move(mapped);
  GgufParser parser(file);
  LOWBIT_RETURN_IF_ERROR(parser.Parse());
  return file;
}

Result<GgufFile> GgufFile::FromBytes(std::vector<uint8_t> bytes, std::string name) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  GgufFile file;
  file.path_ = std::move(name);
  file.base_ = owned->data();
  file.size_ = owned->size();
  file.storage_ = std::move(owned);
  GgufParser parser(file);
  LOWBIT_RETURN_IF_ERROR(parser.Parse());
  return file;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(const std::string& path, std::string_view key) {
  return NotFound(path + ": metadata key '" + std::string(key) + "' not found");
}

Status WrongType(const std::string& path, std::string_view key, const GgufValue& v,
                 std::string_view expected) {
  std::string got(GgufTypeName(v.type));
  if (v.type == GgufType::kArray) got += "<" + std::string(GgufTypeName(v.array_type)) + ">";
  return InvalidArgument(path + ": metadata key '" + std::string(key) + "' has type " + got +
                         ", expected " + std::string(expected));
}

}  // namespace

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  int64_t out = 0;
  if (!v->ToInt(&out)) {
    if (v->type == GgufType::kUint64) {
      return InvalidArgument(path_ + ": metadata key '" + std::string(key) +
                             "' = " + Str(v->scalar_bits) + " does not fit in int64");
    }
    return WrongType(path_, key, *v, "an integer");
  }
  return out;
}

Result<int64_t> GgufFile::GetIntOr(std::string_view key, int64_t default_value) const {
  if (Find(key) == nullptr) return default_value;
  return GetInt(key);
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  double out = 0;
  if (!v->ToDouble(&out)) return WrongType(path_, key, *v, "a number");
  return out;
}

Result<double> GgufFile::GetFloatOr(std::string_view key, double default_value) const {
  if (Find(key) == nullptr) return default_value;
  return GetFloat(key);
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufType::kBool) return WrongType(path_, key, *v, "bool");
  return v->scalar_bits != 0;
}

Result<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufType::kString) return WrongType(path_, key, *v, "string");
  return v->string;
}

Result<std::string> GgufFile::GetStringOr(std::string_view key,
                                          std::string_view default_value) const {
  if (Find(key) == nullptr) return std::string(default_value);
  return GetString(key);
}

Result<std::span<const std::string>> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufType::kArray || v->array_type != GgufType::kString) {
    return WrongType(path_, key, *v, "array<string>");
  }
  return std::span<const std::string>(v->array_strings);
}

Result<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufType::kArray || !GgufTypeIsFloat(v->array_type)) {
    return WrongType(path_, key, *v, "array<float32> or array<float64>");
  }
  std::vector<float> out(static_cast<size_t>(v->array_size));
  for (uint64_t i = 0; i < v->array_size; ++i) {
    double d = 0;
    LOWBIT_CHECK(v->DoubleAt(i, &d));
    out[static_cast<size_t>(i)] = static_cast<float>(d);
  }
  return out;
}

Result<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufType::kArray || !GgufTypeIsInteger(v->array_type)) {
    return WrongType(path_, key, *v, "an integer array");
  }
  std::vector<int64_t> out(static_cast<size_t>(v->array_size));
  for (uint64_t i = 0; i < v->array_size; ++i) {
    if (!v->IntAt(i, &out[static_cast<size_t>(i)])) {
      return InvalidArgument(path_ + ": metadata key '" + std::string(key) + "'[" + Str(i) +
                             "] does not fit in int64");
    }
  }
  return out;
}

}  // namespace lowbit
