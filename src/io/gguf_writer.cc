// GGUF writer: validates what it is given, lays tensors out at aligned offsets and writes the file
// atomically (version 3, little-endian). Layout: see include/lowbit/gguf.h.
#include <cstring>

#include "io/file_io.h"
#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"

namespace lowbit {
namespace {

constexpr uint64_t kMaxKeyBytes = 65535;
constexpr int64_t kMaxTensorElements = int64_t{1} << 50;

std::string Str(uint64_t v) { return std::to_string(v); }

// Appends little-endian encodings to a byte string.
class Encoder {
 public:
  explicit Encoder(std::string* out) : out_(out) {}
  template <class T>
  void Put(T v) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    out_->append(bytes, sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    out_->append(s);
  }
  void PutBytes(const std::vector<uint8_t>& b) {
    out_->append(reinterpret_cast<const char*>(b.data()), b.size());
  }

 private:
  std::string* out_;
};

Status EncodeValue(const std::string& key, const GgufValue& v, int depth, Encoder* enc) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgument("GGUF metadata '" + key + "': " + why);
  };
  if (static_cast<uint32_t>(v.type) > static_cast<uint32_t>(GgufType::kFloat64)) {
    return bad("unknown value type " + Str(static_cast<uint32_t>(v.type)));
  }
  if (v.type == GgufType::kString) {
    enc->PutString(v.string);
    return Status::Ok();
  }
  if (v.type != GgufType::kArray) {
    const int size = GgufTypeSize(v.type);
    if (size < 8 && (v.scalar_bits >> (8 * size)) != 0) {
      return bad("scalar_bits has bits above its " + Str(size) + "-byte type");
    }
    if (v.type == GgufType::kBool && v.scalar_bits > 1) return bad("bool value is not 0 or 1");
    char bytes[8];
    std::memcpy(bytes, &v.scalar_bits, 8);
    for (int i = 0; i < size; ++i) enc->Put<char>(bytes[i]);
    return Status::Ok();
  }
  if (depth >= kGgufMaxArrayDepth) return bad("arrays nested too deeply");
  if (static_cast<uint32_t>(v.array_type) > static_cast<uint32_t>(GgufType::kFloat64)) {
    return bad("unknown array element type " + Str(static_cast<uint32_t>(v.array_type)));
  }
  enc->Put<uint32_t>(static_cast<uint32_t>(v.array_type));
  enc->Put<uint64_t>(v.array_size);
  const int size = GgufTypeSize(v.array_type);
  if (size > 0) {
    if (v.array_bytes.size() != v.array_size * static_cast<uint64_t>(size)) {
      return bad("array of " + Str(v.array_size) + " " + std::string(GgufTypeName(v.array_type)) +
                 " holds " + Str(v.array_bytes.size()) + " bytes");
    }
    if (v.array_type == GgufType::kBool) {
      for (uint8_t b : v.array_bytes) {
        if (b > 1) return bad("bool array element is not 0 or 1");
      }
    }
    enc->PutBytes(v.array_bytes);
    return Status::Ok();
  }
  if (v.array_type == GgufType::kString) {
    if (v.array_strings.size() != v.array_size) {
      return bad("array_size " + Str(v.array_size) + " != " + Str(v.array_strings.size()) +
                 " strings");
    }
    for (const std::string& s : v.array_strings) enc->PutString(s);
    return Status::Ok();
  }
  if (v.array_items.size() != v.array_size) {
    return bad("array_size " + Str(v.array_size) + " != " + Str(v.array_items.size()) + " items");
  }
  for (const GgufValue& item : v.array_items) {
    if (item.type != GgufType::kArray) return bad("an array-of-arrays item is not an array");
    LOWBIT_RETURN_IF_ERROR(EncodeValue(key, item, depth + 1, enc));
  }
  return Status::Ok();
}

// Destination of the serialized bytes: a vector (Serialize) or an atomic file (WriteAtomic).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Write(const void* data, uint64_t n) = 0;
  Status WriteZeros(uint64_t n) {
    static const uint8_t kZeros[256] = {};
    while (n > 0) {
      const uint64_t take = n < sizeof(kZeros) ? n : sizeof(kZeros);
      LOWBIT_RETURN_IF_ERROR(Write(kZeros, take));
      n -= take;
    }
    return Status::Ok();
  }
};

class VectorSink final : public Sink {
 public:
  Status Write(const void* data, uint64_t n) override {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + n);
    return Status::Ok();
  }
  std::vector<uint8_t> bytes;
};

class FileSink final : public Sink {
 public:
  explicit FileSink(io::AtomicFileWriter* w) : w_(w) {}
  Status Write(const void* data, uint64_t n) override { return w_->Write(data, n); }

 private:
  io::AtomicFileWriter* w_;
};

}  // namespace

void GgufWriter::SetValue(std::string key, GgufValue value) {
  auto it = metadata_index_.find(key);
  if (it != metadata_index_.end()) {
    metadata_[it->second].value = std::move(value);
    return;
  }
  metadata_index_.emplace(key, metadata_.size());
  metadata_.push_back(GgufKeyValue{std::move(key), std::move(value), 0});
}

Status GgufWriter::AddTensor(std::string name, std::vector<int64_t> dims, FormatPtr format,
                             std::span<const uint8_t> bytes) {
  return AddTensorImpl(std::move(name), std::move(dims), std::move(format), bytes, true);
}

Status GgufWriter::AddTensorView(std::string name, std::vector<int64_t> dims, FormatPtr format,
                                 std::span<const uint8_t> bytes) {
  return AddTensorImpl(std::move(name), std::move(dims), std::move(format), bytes, false);
}

Status GgufWriter::AddTensorImpl(std::string name, std::vector<int64_t> dims, FormatPtr format,
                                 std::span<const uint8_t> bytes, bool copy) {
  const std::string what = "GGUF tensor '" + name + "': ";
  if (name.empty() || name.size() > kMaxKeyBytes) {
    return InvalidArgument("GGUF tensor name must have 1.." + Str(kMaxKeyBytes) + " bytes");
  }
  if (tensor_index_.count(name)) return InvalidArgument(what + "added twice");
  if (format == nullptr) return InvalidArgument(what + "no format");
  if (dims.empty() || dims.size() > static_cast<size_t>(kGgufMaxDims)) {
    return InvalidArgument(what + Str(dims.size()) + " dims (GGUF allows 1.." + Str(kGgufMaxDims) +
                           ")");
  }
  int64_t elements = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] <= 0 || dims[d] > kMaxTensorElements || elements > kMaxTensorElements / dims[d]) {
      return InvalidArgument(what + "dims[" + Str(d) + "] = " + std::to_string(dims[d]) +
                             " is not in 1..2^50 or makes the tensor too large");
    }
    elements *= dims[d];
  }
  const int64_t cols = dims[0];
  const int64_t rows = elements / cols;
  const int64_t expected = format->PackedBytes(rows, cols);
  if (static_cast<int64_t>(bytes.size()) != expected) {
    return InvalidArgument(what + "has " + Str(bytes.size()) + " bytes, format " + format->spec() +
                           " needs " + std::to_string(expected) + " for (" + std::to_string(rows) +
                           ", " + std::to_string(cols) + ")");
  }
  auto t = std::make_unique<PendingTensor>();
  t->ggml_type = kLowbitGgufType;
  // Use the ggml id only when reading it back yields this same format (and ggml's whole-block
  // rule holds); otherwise the lowbit id plus the spec key.
  if (std::optional<int> id = format->gguf_type(); id.has_value() && *id >= 0) {
    FormatPtr mapped = FormatForGgmlType(static_cast<uint32_t>(*id));
    const int64_t b = format->block_size();
    if (mapped != nullptr && mapped->spec() == format->spec() && (b <= 1 || cols % b == 0)) {
      t->ggml_type = static_cast<uint32_t>(*id);
    }
  }
  if (t->ggml_type == kLowbitGgufType) {
    SetString(std::string(kLowbitTensorFormatKeyPrefix) + name, format->spec());
  }
  t->name = name;
  t->dims = std::move(dims);
  t->format = std::move(format);
  if (copy) {
    t->owned.assign(bytes.begin(), bytes.end());
    t->bytes = t->owned;
  } else {
    t->bytes = bytes;
  }
  tensor_index_.emplace(std::move(name), tensors_.size());
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Result<uint64_t> GgufWriter::Alignment() const {
  auto it = metadata_index_.find("general.alignment");
  if (it == metadata_index_.end()) return kGgufDefaultAlignment;
  const GgufValue& v = metadata_[it->second].value;
  if (v.type != GgufType::kUint32 || v.scalar_bits == 0 ||
      (v.scalar_bits & (v.scalar_bits - 1)) != 0) {
    return InvalidArgument("GGUF metadata 'general.alignment' must be a uint32 power of two");
  }
  return v.scalar_bits;
}

namespace {

// What the serializer needs of one tensor.
struct TensorRecord {
  const std::string* name;
  const std::vector<int64_t>* dims;
  uint32_t ggml_type;
  std::span<const uint8_t> data;
};

// Header (magic .. tensor infos) into a string, with the tensor offsets already assigned.
Result<std::string> EncodeHeader(const std::vector<GgufKeyValue>& metadata,
                                 const std::vector<TensorRecord>& tensors,
                                 const std::vector<uint64_t>& offsets) {
  std::string header;
  Encoder enc(&header);
  header.append("GGUF", 4);
  enc.Put<uint32_t>(kGgufWriteVersion);
  enc.Put<uint64_t>(tensors.size());
  enc.Put<uint64_t>(metadata.size());
  for (const GgufKeyValue& kv : metadata) {
    if (kv.key.empty() || kv.key.size() > kMaxKeyBytes) {
      return InvalidArgument("GGUF metadata key must have 1.." + Str(kMaxKeyBytes) + " bytes");
    }
    enc.PutString(kv.key);
    enc.Put<uint32_t>(static_cast<uint32_t>(kv.value.type));
    LOWBIT_RETURN_IF_ERROR(EncodeValue(kv.key, kv.value, 0, &enc));
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    enc.PutString(*tensors[i].name);
    enc.Put<uint32_t>(static_cast<uint32_t>(tensors[i].dims->size()));
    for (int64_t d : *tensors[i].dims) enc.Put<uint64_t>(static_cast<uint64_t>(d));
    enc.Put<uint32_t>(tensors[i].ggml_type);
    enc.Put<uint64_t>(offsets[i]);
  }
  return header;
}

// Header, zero padding to the alignment, then each tensor followed by zero padding to the
// alignment (the last one too, as gguf-py and llama.cpp do).
Status WriteGguf(const std::vector<GgufKeyValue>& metadata,
                 const std::vector<TensorRecord>& tensors, uint64_t alignment, Sink* sink) {
  std::vector<uint64_t> offsets(tensors.size());
  uint64_t running = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    offsets[i] = running;
    if (!io::AlignUp(running + tensors[i].data.size(), alignment, &running)) {
      return InvalidArgument("GGUF tensor data too large");
    }
  }
  LOWBIT_ASSIGN_OR_RETURN(std::string header, EncodeHeader(metadata, tensors, offsets));
  uint64_t data_start = 0;
  LOWBIT_CHECK(io::AlignUp(header.size(), alignment, &data_start));
  LOWBIT_RETURN_IF_ERROR(sink->Write(header.data(), header.size()));
  LOWBIT_RETURN_IF_ERROR(sink->WriteZeros(data_start - header.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t end = offsets[i] + tensors[i].data.size();
    const uint64_t next = i + 1 < tensors.size() ? offsets[i + 1] : running;
    LOWBIT_RETURN_IF_ERROR(sink->Write(tensors[i].data.data(), tensors[i].data.size()));
    LOWBIT_RETURN_IF_ERROR(sink->WriteZeros(next - end));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<uint8_t>> GgufWriter::Serialize() const {
  LOWBIT_ASSIGN_OR_RETURN(uint64_t alignment, Alignment());
  std::vector<TensorRecord> records;
  for (const auto& t : tensors_) records.push_back({&t->name, &t->dims, t->ggml_type, t->bytes});
  VectorSink sink;
  LOWBIT_RETURN_IF_ERROR(WriteGguf(metadata_, records, alignment, &sink));
  return std::move(sink.bytes);
}

Status GgufWriter::WriteAtomic(const std::string& path) const {
  LOWBIT_ASSIGN_OR_RETURN(uint64_t alignment, Alignment());
  std::vector<TensorRecord> records;
  for (const auto& t : tensors_) records.push_back({&t->name, &t->dims, t->ggml_type, t->bytes});
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<io::AtomicFileWriter> writer,
                          io::AtomicFileWriter::Create(path));
  FileSink sink(writer.get());
  LOWBIT_RETURN_IF_ERROR(WriteGguf(metadata_, records, alignment, &sink));
  return writer->Commit();
}

}  // namespace lowbit
