// safetensors writer: JSON header (sorted keys, padded with spaces to a multiple of 8 bytes, as the
// reference implementation does) followed by the tensors in AddTensor order, written atomically.
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/file_io.h"
#include "lowbit/safetensors.h"

namespace lowbit {
namespace {

constexpr int64_t kMaxTensorElements = int64_t{1} << 50;

}  // namespace

Status SafetensorsWriter::AddTensor(std::string name, std::vector<int64_t> shape,
                                    SafetensorsDtype dtype, std::span<const uint8_t> bytes) {
  return Add(std::move(name), std::move(shape), dtype, bytes, true);
}

Status SafetensorsWriter::AddTensorView(std::string name, std::vector<int64_t> shape,
                                        SafetensorsDtype dtype, std::span<const uint8_t> bytes) {
  return Add(std::move(name), std::move(shape), dtype, bytes, false);
}

Status SafetensorsWriter::AddTensor(std::string name, std::vector<int64_t> shape,
                                    const Format& format, std::span<const uint8_t> bytes) {
  std::optional<SafetensorsDtype> dtype = SafetensorsDtypeForFormat(format);
  if (!dtype) {
    return InvalidArgument("safetensors tensor '" + name + "': format " + format.spec() +
                           " has no safetensors dtype (only f32, f16, bf16)");
  }
  return Add(std::move(name), std::move(shape), *dtype, bytes, true);
}

Status SafetensorsWriter::Add(std::string name, std::vector<int64_t> shape, SafetensorsDtype dtype,
                              std::span<const uint8_t> bytes, bool copy) {
  const std::string what = "safetensors tensor '" + name + "': ";
  if (name.empty() || name == "__metadata__") {
    return InvalidArgument("safetensors tensor name '" + name + "' is not allowed");
  }
  if (index_.count(name)) return InvalidArgument(what + "added twice");
  int64_t elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0 || shape[d] > kMaxTensorElements ||
        (shape[d] > 0 && elements > kMaxTensorElements / shape[d])) {
      return InvalidArgument(what + "shape[" + std::to_string(d) +
                             "] = " + std::to_string(shape[d]) + " is negative or too large");
    }
    elements *= shape[d];
  }
  const uint64_t expected =
      static_cast<uint64_t>(elements) * static_cast<uint64_t>(SafetensorsDtypeSize(dtype));
  if (bytes.size() != expected) {
    return InvalidArgument(what + "has " + std::to_string(bytes.size()) + " bytes, " +
                           std::string(SafetensorsDtypeName(dtype)) + " x " +
                           std::to_string(elements) + " needs " + std::to_string(expected));
  }
  auto t = std::make_unique<PendingTensor>();
  t->name = name;
  t->shape = std::move(shape);
  t->dtype = dtype;
  if (copy) {
    t->owned.assign(bytes.begin(), bytes.end());
    t->bytes = t->owned;
  } else {
    t->bytes = bytes;
  }
  index_.emplace(std::move(name), tensors_.size());
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

std::string SafetensorsWriter::Header() const {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    header[t->name] = {{"dtype", std::string(SafetensorsDtypeName(t->dtype))},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

Result<std::vector<uint8_t>> SafetensorsWriter::Serialize() const {
  const std::string header = Header();
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  for (const auto& t : tensors_) out.insert(out.end(), t->bytes.begin(), t->bytes.end());
  return out;
}

Status SafetensorsWriter::WriteAtomic(const std::string& path) const {
  const std::string header = Header();
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<io::AtomicFileWriter> writer,
                          io::AtomicFileWriter::Create(path));
  const uint64_t n = header.size();
  LOWBIT_RETURN_IF_ERROR(writer->Write(&n, 8));
  LOWBIT_RETURN_IF_ERROR(writer->Write(header.data(), header.size()));
  for (const auto& t : tensors_)
    LOWBIT_RETURN_IF_ERROR(writer->Write(t->bytes.data(), t->bytes.size()));
  return writer->Commit();
}

}  // namespace lowbit
