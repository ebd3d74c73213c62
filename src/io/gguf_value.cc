// GGUF metadata values (GgufValue) and the ggml type id <-> Format map.
#include <bit>
#include <cstdio>
#include <cstring>
#include <map>

#include "lowbit/format_registry.h"
#include "lowbit/gguf.h"

namespace lowbit {

static_assert(std::endian::native == std::endian::little,
              "GGUF and safetensors are little-endian; lowbit reads them with memcpy");

std::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

int GgufTypeSize(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool GgufTypeIsInteger(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool GgufTypeIsFloat(GgufType type) {
  return type == GgufType::kFloat32 || type == GgufType::kFloat64;
}

namespace {

template <class T>
GgufValue Scalar(GgufType type, T v) {
  GgufValue out;
  out.type = type;
  std::memcpy(&out.scalar_bits, &v, sizeof(T));
  return out;
}

template <class T>
GgufValue TypedArray(GgufType type, std::span<const T> v) {
  return GgufValue::NumericArray(
      type, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()));
}

// Decodes the little-endian value of a numeric/bool type from its bytes at p.
bool BitsToInt(GgufType type, const uint8_t* p, int64_t* out) {
  switch (type) {
    case GgufType::kUint8:
      *out = p[0];
      return true;
    case GgufType::kInt8:
      *out = static_cast<int8_t>(p[0]);
      return true;
    case GgufType::kBool:
      *out = p[0] != 0;
      return true;
    case GgufType::kUint16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      *out = v;
      return true;
    }
    case GgufType::kInt16: {
      int16_t v;
      std::memcpy(&v, p, 2);
      *out = v;
      return true;
    }
    case GgufType::kUint32: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      *out = v;
      return true;
    }
    case GgufType::kInt32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      *out = v;
      return true;
    }
    case GgufType::kInt64: {
      std::memcpy(out, p, 8);
      return true;
    }
    case GgufType::kUint64: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      if (v > static_cast<uint64_t>(INT64_MAX)) return false;
      *out = static_cast<int64_t>(v);
      return true;
    }
    default:
      return false;
  }
}

bool BitsToDouble(GgufType type, const uint8_t* p, double* out) {
  if (type == GgufType::kFloat32) {
    float v;
    std::memcpy(&v, p, 4);
    *out = v;
    return true;
  }
  if (type == GgufType::kFloat64) {
    std::memcpy(out, p, 8);
    return true;
  }
  if (type == GgufType::kUint64) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    *out = static_cast<double>(v);
    return true;
  }
  int64_t i = 0;
  if (type == GgufType::kBool || !BitsToInt(type, p, &i)) return false;
  *out = static_cast<double>(i);
  return true;
}

std::string Quoted(const std::string& s, size_t max_chars = 40) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_chars) out += "...";
  return out + "\"";
}

std::string NumberText(GgufType type, const uint8_t* p) {
  double d = 0;
  int64_t i = 0;
  if (type == GgufType::kBool) return p[0] ? "true" : "false";
  if (type == GgufType::kUint64) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return std::to_string(v);
  }
  if (BitsToInt(type, p, &i)) return std::to_string(i);
  if (BitsToDouble(type, p, &d)) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", d);
    return buf;
  }
  return "?";
}

}  // namespace

GgufValue GgufValue::Uint8(uint8_t v) { return Scalar(GgufType::kUint8, v); }
GgufValue GgufValue::Int8(int8_t v) { return Scalar(GgufType::kInt8, v); }
GgufValue GgufValue::Uint16(uint16_t v) { return Scalar(GgufType::kUint16, v); }
GgufValue GgufValue::Int16(int16_t v) { return Scalar(GgufType::kInt16, v); }
GgufValue GgufValue::Uint32(uint32_t v) { return Scalar(GgufType::kUint32, v); }
GgufValue GgufValue::Int32(int32_t v) { return Scalar(GgufType::kInt32, v); }
GgufValue GgufValue::Uint64(uint64_t v) { return Scalar(GgufType::kUint64, v); }
GgufValue GgufValue::Int64(int64_t v) { return Scalar(GgufType::kInt64, v); }
GgufValue GgufValue::Float32(float v) { return Scalar(GgufType::kFloat32, v); }
GgufValue GgufValue::Float64(double v) { return Scalar(GgufType::kFloat64, v); }
GgufValue GgufValue::Bool(bool v) { return Scalar(GgufType::kBool, static_cast<uint8_t>(v)); }

GgufValue GgufValue::String(std::string v) {
  GgufValue out;
  out.type = GgufType::kString;
  out.string = std::move(v);
  return out;
}

GgufValue GgufValue::NumericArray(GgufType element_type, std::span<const uint8_t> bytes) {
  const int size = GgufTypeSize(element_type);
  LOWBIT_CHECK(size > 0 && bytes.size() % static_cast<size_t>(size) == 0);
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = element_type;
  out.array_size = bytes.size() / static_cast<size_t>(size);
  out.array_bytes.assign(bytes.begin(), bytes.end());
  return out;
}

GgufValue GgufValue::Float32Array(std::span<const float> v) {
  return TypedArray(GgufType::kFloat32, v);
}
GgufValue GgufValue::Int32Array(std::span<const int32_t> v) {
  return TypedArray(GgufType::kInt32, v);
}
GgufValue GgufValue::Uint32Array(std::span<const uint32_t> v) {
  return TypedArray(GgufType::kUint32, v);
}
GgufValue GgufValue::Int64Array(std::span<const int64_t> v) {
  return TypedArray(GgufType::kInt64, v);
}

GgufValue GgufValue::BoolArray(const std::vector<bool>& v) {
  std::vector<uint8_t> bytes(v.begin(), v.end());
  return NumericArray(GgufType::kBool, bytes);
}

GgufValue GgufValue::StringArray(std::vector<std::string> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kString;
  out.array_size = v.size();
  out.array_strings = std::move(v);
  return out;
}

GgufValue GgufValue::ArrayOfArrays(std::vector<GgufValue> items) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kArray;
  out.array_size = items.size();
  out.array_items = std::move(items);
  return out;
}

bool GgufValue::ToInt(int64_t* out) const {
  if (!is_integer()) return false;
  uint8_t bytes[8];
  std::memcpy(bytes, &scalar_bits, 8);
  return BitsToInt(type, bytes, out);
}

bool GgufValue::ToDouble(double* out) const {
  if (!is_integer() && !is_float()) return false;
  uint8_t bytes[8];
  std::memcpy(bytes, &scalar_bits, 8);
  return BitsToDouble(type, bytes, out);
}

bool GgufValue::IntAt(uint64_t i, int64_t* out) const {
  const int size = GgufTypeSize(array_type);
  if (type != GgufType::kArray || size == 0 || GgufTypeIsFloat(array_type) || i >= array_size ||
      array_bytes.size() < (i + 1) * size) {
    return false;
  }
  return BitsToInt(array_type, array_bytes.data() + i * size, out);
}

bool GgufValue::DoubleAt(uint64_t i, double* out) const {
  const int size = GgufTypeSize(array_type);
  if (type != GgufType::kArray || size == 0 || array_type == GgufType::kBool || i >= array_size ||
      array_bytes.size() < (i + 1) * size) {
    return false;
  }
  return BitsToDouble(array_type, array_bytes.data() + i * size, out);
}

std::string GgufValue::DebugString(size_t max_items) const {
  if (type == GgufType::kString) return "string " + Quoted(string);
  if (type != GgufType::kArray) {
    uint8_t bytes[8];
    std::memcpy(bytes, &scalar_bits, 8);
    return std::string(GgufTypeName(type)) + " " + NumberText(type, bytes);
  }
  std::string out =
      "array<" + std::string(GgufTypeName(array_type)) + ">[" + std::to_string(array_size) + "] [";
  const uint64_t shown = array_size < max_items ? array_size : max_items;
  for (uint64_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    if (array_type == GgufType::kString) {
      out += i < array_strings.size() ? Quoted(array_strings[i], 20) : "?";
    } else if (array_type == GgufType::kArray) {
      out += i < array_items.size() ? array_items[i].DebugString(3) : "?";
    } else {
      const int size = GgufTypeSize(array_type);
      out += (i + 1) * size <= array_bytes.size()
                 ? NumberText(array_type, array_bytes.data() + i * size)
                 : "?";
    }
  }
  if (shown < array_size) out += ", ...";
  return out + "]";
}

bool GgufValue::operator==(const GgufValue& other) const {
  if (type != other.type) return false;
  switch (type) {
    case GgufType::kString:
      return string == other.string;
    case GgufType::kArray:
      return array_type == other.array_type && array_size == other.array_size &&
             array_bytes == other.array_bytes && array_strings == other.array_strings &&
             array_items == other.array_items;
    default:
      return scalar_bits == other.scalar_bits;
  }
}

std::string GgmlTypeName(uint32_t ggml_type) {
  // Names of ggml's enum ggml_type (ggml.h); ids 4, 5, 31..33 and 36..38 are retired.
  static const std::map<uint32_t, const char*> kNames = {
      {0, "F32"},     {1, "F16"},      {2, "Q4_0"},   {3, "Q4_1"},    {6, "Q5_0"},
      {7, "Q5_1"},    {8, "Q8_0"},     {9, "Q8_1"},   {10, "Q2_K"},   {11, "Q3_K"},
      {12, "Q4_K"},   {13, "Q5_K"},    {14, "Q6_K"},  {15, "Q8_K"},   {16, "IQ2_XXS"},
      {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},
      {22, "IQ2_S"},  {23, "IQ4_XS"},  {24, "I8"},    {25, "I16"},    {26, "I32"},
      {27, "I64"},    {28, "F64"},     {29, "IQ1_M"}, {30, "BF16"},   {34, "TQ1_0"},
      {35, "TQ2_0"},  {39, "MXFP4"},   {40, "NVFP4"}, {41, "Q1_0"},
  };
  if (ggml_type == kLowbitGgufType) return "LOWBIT";
  auto it = kNames.find(ggml_type);
  if (it != kNames.end()) return it->second;
  return "type " + std::to_string(ggml_type);
}

FormatPtr FormatForGgmlType(uint32_t ggml_type) {
  // Built once from the registry: the first preset claiming an id wins (presets are registered in
  // a fixed order, so the choice is deterministic).
  static const std::map<uint32_t, FormatPtr>* kMap = [] {
    auto* map = new std::map<uint32_t, FormatPtr>();
    const FormatRegistry& registry = FormatRegistry::Get();
    for (const PresetInfo& preset : registry.presets()) {
      Result<FormatPtr> f = registry.Parse(preset.spec);
      if (!f.ok() || !(*f)->gguf_type().has_value()) continue;
      const int id = *(*f)->gguf_type();
      if (id < 0 || static_cast<uint32_t>(id) == kLowbitGgufType) continue;
      map->emplace(static_cast<uint32_t>(id), *f);
    }
    return map;
  }();
  auto it = kMap->find(ggml_type);
  return it == kMap->end() ? nullptr : it->second;
}

}  // namespace lowbit
