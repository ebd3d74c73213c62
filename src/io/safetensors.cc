// safetensors reader (single files and Hugging Face folders). Format and rules: safetensors.h.
#include "lowbit/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_io.h"
#include "io/json_limits.h"
#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB (safetensors MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Real headers nest 3 levels ({tensor: {shape: [...]}}); anything deep is hostile.
constexpr int kMaxJsonDepth = 16;
constexpr int64_t kMaxTensorElements = int64_t{1} << 50;

struct DtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;
  int size;
};

constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},      {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},          {SafetensorsDtype::kF8E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::kF8E4M3, "F8_E4M3", 1}, {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kU16, "U16", 2},        {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBf16, "BF16", 2},      {SafetensorsDtype::kI32, "I32", 4},
    {SafetensorsDtype::kU32, "U32", 4},        {SafetensorsDtype::kF32, "F32", 4},
    {SafetensorsDtype::kF64, "F64", 8},        {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kU64, "U64", 8},
};

const DtypeInfo& Info(SafetensorsDtype dtype) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == dtype) return d;
  }
  LOWBIT_CHECK(false);
  return kDtypes[0];
}

std::string Str(uint64_t v) { return std::to_string(v); }

// Parses JSON text; the error names the file and the parser's position.
Result<json> ParseJson(const std::string& file, std::string_view what, const char* p, uint64_t n,
                       uint64_t file_offset) {
  if (io::JsonNestingDepth(std::string_view(p, n), kMaxJsonDepth) > kMaxJsonDepth) {
    return DataLoss(file + ": field '" + std::string(what) + "' at offset " + Str(file_offset) +
                    ": JSON nested deeper than " + Str(kMaxJsonDepth) + " levels");
  }
  try {
    return json::parse(p, p + n);
  } catch (const json::exception& e) {
    return DataLoss(file + ": field '" + std::string(what) + "' at offset " + Str(file_offset) +
                    ": invalid JSON: " + e.what());
  }
}

}  // namespace

std::string_view SafetensorsDtypeName(SafetensorsDtype dtype) { return Info(dtype).name; }
int SafetensorsDtypeSize(SafetensorsDtype dtype) { return Info(dtype).size; }

std::optional<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.name == name) return d.dtype;
  }
  return std::nullopt;
}

FormatPtr FormatForSafetensorsDtype(SafetensorsDtype dtype) {
  const char* spec = nullptr;
  switch (dtype) {
    case SafetensorsDtype::kF32:
      spec = "f32";
      break;
    case SafetensorsDtype::kF16:
      spec = "f16";
      break;
    case SafetensorsDtype::kBf16:
      spec = "bf16";
      break;
    default:
      return nullptr;
  }
  Result<FormatPtr> f = ParseFormat(spec);
  LOWBIT_CHECK(f.ok());
  return *f;
}

std::optional<SafetensorsDtype> SafetensorsDtypeForFormat(const Format& format) {
  for (SafetensorsDtype d :
       {SafetensorsDtype::kF32, SafetensorsDtype::kF16, SafetensorsDtype::kBf16}) {
    if (FormatForSafetensorsDtype(d)->spec() == format.spec()) return d;
  }
  return std::nullopt;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<const io::MappedFile> mapped, io::MappedFile::Open(path));
  SafetensorsFile file;
  file.path_ = path;
  file.base_ = mapped->data();
  file.size_ = mapped->size();
  file.storage_ = std::move(mapped);
  return Parse(std::move(file));
}

Result<SafetensorsFile> SafetensorsFile::FromBytes(std::vector<uint8_t> bytes, std::string name) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  SafetensorsFile file;
  file.path_ = std::move(name);
  file.base_ = owned->data();
  file.size_ = owned->size();
  file.storage_ = std::move(owned);
  return Parse(std::move(file));
}

Result<SafetensorsFile> SafetensorsFile::Parse(SafetensorsFile file) {
  const std::string& path = file.path_;
  const auto fail = [&](const std::string& field, uint64_t at, const std::string& reason) {
    return DataLoss(path + ": field '" + field + "' at offset " + Str(at) + ": " + reason);
  };
  if (file.size_ < 8) {
    return fail("header length", 0,
                "file is " + Str(file.size_) + " bytes, too short for the 8-byte header length");
  }
  uint64_t n = 0;
  std::memcpy(&n, file.base_, 8);
  if (n > kMaxHeaderBytes) {
    return fail("header length", 0, Str(n) + " bytes exceeds the 100 MB limit");
  }
  if (n > file.size_ - 8) {
    return fail("header length", 0,
                "header of " + Str(n) + " bytes runs past the end of the file (" +
                    Str(file.size_ - 8) + " bytes follow)");
  }
  const char* text = reinterpret_cast<const char*>(file.base_ + 8);
  if (n < 2 || text[0] != '{') return fail("header", 8, "the JSON header must be an object");
  LOWBIT_ASSIGN_OR_RETURN(json header, ParseJson(path, "header", text, n, 8));
  if (!header.is_object()) return fail("header", 8, "the JSON header must be an object");
  file.data_offset_ = 8 + n;
  const uint64_t data_size = file.size_ - file.data_offset_;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return fail("__metadata__", 8, "must be an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return fail("__metadata__." + m.key(), 8, "metadata values must be strings");
        }
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string field = name;
    if (name.empty()) return fail("\"\"", 8, "empty tensor name");
    if (!entry.is_object()) return fail(field, 8, "tensor entry must be an object");
    SafetensorsTensor t;
    t.name = name;
    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return fail(field + ".dtype", 8, "missing or not a string");
    }
    const std::string dtype_name = dtype_it->get<std::string>();
    std::optional<SafetensorsDtype> dtype = ParseSafetensorsDtype(dtype_name);
    if (!dtype) return fail(field + ".dtype", 8, "unknown dtype \"" + dtype_name + "\"");
    t.dtype = *dtype;
    auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return fail(field + ".shape", 8, "missing or not an array");
    }
    int64_t elements = 1;
    for (size_t d = 0; d < shape_it->size(); ++d) {
      const json& dim = (*shape_it)[d];
      const std::string dim_field = field + ".shape[" + Str(d) + "]";
      if (!dim.is_number_unsigned()) {
        return fail(dim_field, 8, "must be a non-negative integer, got " + dim.dump());
      }
      const uint64_t v = dim.get<uint64_t>();
      if (v > static_cast<uint64_t>(kMaxTensorElements) ||
          (v > 0 && elements > kMaxTensorElements / static_cast<int64_t>(v))) {
        return fail(dim_field, 8, "dimension " + Str(v) + " makes the element count exceed 2^50");
      }
      elements *= static_cast<int64_t>(v);
      t.shape.push_back(static_cast<int64_t>(v));
    }
    auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return fail(field + ".data_offsets", 8, "must be [begin, end] with non-negative integers");
    }
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (end < begin) {
      return fail(field + ".data_offsets", 8, "end " + Str(end) + " is before begin " + Str(begin));
    }
    if (end > data_size) {
      return fail(
          field + ".data_offsets", 8,
          "end " + Str(end) + " is past the end of the data (" + Str(data_size) + " bytes)");
    }
    const uint64_t expected = static_cast<uint64_t>(elements) * Info(t.dtype).size;
    if (end - begin != expected) {
      return fail(field + ".data_offsets", 8,
                  "[" + Str(begin) + ", " + Str(end) + ") holds " + Str(end - begin) +
                      " bytes, but " + dtype_name + " " + Str(elements) + " elements need " +
                      Str(expected));
    }
    t.offset = begin;
    t.n_bytes = expected;
    t.data = file.base_ + file.data_offset_ + begin;
    t.cols = t.shape.empty() ? 1 : t.shape.back();
    t.rows = t.cols == 0 ? 0 : elements / t.cols;  // empty tensors: rows * cols == 0
    t.format = FormatForSafetensorsDtype(t.dtype);
    file.tensors_.push_back(std::move(t));
  }
  // The tensors must tile the data section exactly (safetensors' own validation).
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.offset != b.offset ? a.offset < b.offset : a.n_bytes < b.n_bytes;
            });
  uint64_t expected_begin = 0;
  for (const SafetensorsTensor& t : file.tensors_) {
    if (t.offset != expected_begin) {
      return fail(
          t.name + ".data_offsets", 8,
          t.offset < expected_begin
              ? "begin " + Str(t.offset) + " overlaps the previous tensor (ends at " +
                    Str(expected_begin) + ")"
              : "begin " + Str(t.offset) + " leaves a hole after offset " + Str(expected_begin));
    }
    expected_begin = t.offset + t.n_bytes;
  }
  if (expected_begin != data_size) {
    return fail("data", file.data_offset_ + expected_begin,
                Str(data_size - expected_begin) + " bytes after the last tensor belong to none");
  }
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const SafetensorsTensor* SafetensorsFile::FindTensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<SafetensorsModel> SafetensorsModel::Open(const std::string& folder) {
  SafetensorsModel model;
  const std::string single = folder + "/model.safetensors";
  const std::string index_path = folder + "/model.safetensors.index.json";
  Result<std::shared_ptr<const io::MappedFile>> index_file = io::MappedFile::Open(index_path);
  if (!index_file.ok()) {
    if (index_file.status().code() != StatusCode::kNotFound) return index_file.status();
    Result<SafetensorsFile> file = SafetensorsFile::Open(single);
    if (!file.ok()) {
      if (file.status().code() == StatusCode::kNotFound) {
        return NotFound(folder + ": neither model.safetensors nor model.safetensors.index.json");
      }
      return file.status();
    }
    model.metadata_ = file->metadata();
    model.shards_.push_back(std::move(file).value());
  } else {
    const io::MappedFile& mf = **index_file;
    LOWBIT_ASSIGN_OR_RETURN(
        json index,
        ParseJson(index_path, "index", reinterpret_cast<const char*>(mf.data()), mf.size(), 0));
    const auto fail = [&](const std::string& field, const std::string& reason) {
      return DataLoss(index_path + ": field '" + field + "': " + reason);
    };
    if (!index.is_object()) return fail("index", "must be a JSON object");
    if (auto meta = index.find("metadata"); meta != index.end() && meta->is_object()) {
      for (auto m = meta->begin(); m != meta->end(); ++m) {
        model.metadata_[m.key()] =
            m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      }
    }
    auto map_it = index.find("weight_map");
    if (map_it == index.end() || !map_it->is_object()) {
      return fail("weight_map", "missing or not an object");
    }
    // Shards in first-mention order.
    std::vector<std::string> shard_names;
    std::set<std::string> seen;
    for (auto w = map_it->begin(); w != map_it->end(); ++w) {
      if (!w.value().is_string()) return fail("weight_map." + w.key(), "must be a file name");
      const std::string shard = w.value().get<std::string>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
          shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos) {
        return fail("weight_map." + w.key(), "\"" + shard + "\" is not a file name in the folder");
      }
      if (seen.insert(shard).second) shard_names.push_back(shard);
    }
    for (const std::string& shard : shard_names) {
      LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(folder + "/" + shard));
      model.shards_.push_back(std::move(file));
    }
    for (auto w = map_it->begin(); w != map_it->end(); ++w) {
      const std::string shard = w.value().get<std::string>();
      const size_t s = static_cast<size_t>(
          std::find(shard_names.begin(), shard_names.end(), shard) - shard_names.begin());
      if (model.shards_[s].FindTensor(w.key()) == nullptr) {
        return fail("weight_map." + w.key(),
                    "tensor is not in " + shard + " (" + model.shards_[s].path() + ")");
      }
    }
  }
  for (const SafetensorsFile& shard : model.shards_) {
    for (const SafetensorsTensor& t : shard.tensors()) {
      if (!model.index_.emplace(t.name, &t).second) {
        return DataLoss(shard.path() + ": tensor '" + t.name + "' also appears in " +
                        "another shard of " + folder);
      }
      model.tensors_.push_back(&t);
    }
  }
  return model;
}

const SafetensorsTensor* SafetensorsModel::FindTensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

}  // namespace lowbit
