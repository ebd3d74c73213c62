#include "lowbit/format_registry.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "formats/families.h"

namespace lowbit {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsNameChar(char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'; }
bool IsValueChar(char c) { return IsNameChar(c) || c == '.' || c == '+' || c == '-'; }

bool AllOf(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

std::string Join(const std::vector<std::string_view>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += '|';
    out += items[i];
  }
  return out;
}

}  // namespace

Result<SpecParams> SpecParams::Parse(std::string_view family, std::string_view text) {
  SpecParams params;
  params.family_ = std::string(family);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("format spec '" + params.family_ + ":" + std::string(text) +
                             "': parameter '" + std::string(item) + "' is not key=value");
    }
    std::string key(item.substr(0, eq));
    std::string value(item.substr(eq + 1));
    if (!AllOf(key, IsNameChar) || !AllOf(value, IsValueChar)) {
      return InvalidArgument("format spec '" + params.family_ + ":" + std::string(text) +
                             "': bad characters in parameter '" + std::string(item) + "'");
    }
    if (params.values_.count(key)) {
      return InvalidArgument("format spec '" + params.family_ + "': parameter '" + key +
                             "' given twice");
    }
    params.values_[key] = value;
    params.used_[key] = false;
    pos = comma + 1;
    if (comma == text.size() - 1) {
      return InvalidArgument("format spec '" + params.family_ + "': trailing ','");
    }
  }
  return params;
}

Result<int64_t> SpecParams::GetInt(std::string_view key, int64_t default_value,
                                   int64_t min_value, int64_t max_value) {
  auto it = values_.find(key);
  if (it == values_.end()) return default_value;
  used_.find(key)->second = true;
  const std::string& s = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return InvalidArgument("format '" + family_ + "': " + std::string(key) + "='" + s +
                           "' is not an integer");
  }
  if (v < min_value || v > max_value) {
    return InvalidArgument("format '" + family_ + "': " + std::string(key) + "=" + s +
                           " is out of range [" + std::to_string(min_value) + ", " +
                           std::to_string(max_value) + "]");
  }
  return v;
}

Result<std::string> SpecParams::GetEnum(std::string_view key, std::string_view default_value,
                                        const std::vector<std::string_view>& choices) {
  auto it = values_.find(key);
  if (it == values_.end()) return std::string(default_value);
  used_.find(key)->second = true;
  if (std::find(choices.begin(), choices.end(), it->second) == choices.end()) {
    return InvalidArgument("format '" + family_ + "': " + std::string(key) + "='" + it->second +
                           "' is not one of " + Join(choices));
  }
  return it->second;
}

std::string SpecParams::GetString(std::string_view key, std::string_view default_value) {
  auto it = values_.find(key);
  if (it == values_.end()) return std::string(default_value);
  used_.find(key)->second = true;
  return it->second;
}

Status SpecParams::Finish() const {
  for (const auto& [key, used] : used_) {
    if (!used) {
      return InvalidArgument("format '" + family_ + "': unknown parameter '" + key + "'");
    }
  }
  return Status::Ok();
}

void FormatRegistry::AddFamily(FamilyInfo family) {
  LOWBIT_CHECK(FindFamily(family.name) == nullptr);
  families_.push_back(std::move(family));
}

void FormatRegistry::AddPreset(PresetInfo preset) {
  LOWBIT_CHECK(FindPreset(preset.name) == nullptr);
  presets_.push_back(std::move(preset));
}

const FamilyInfo* FormatRegistry::FindFamily(std::string_view name) const {
  for (const auto& f : families_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const PresetInfo* FormatRegistry::FindPreset(std::string_view name) const {
  for (const auto& p : presets_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const PresetInfo* FormatRegistry::PresetForSpec(std::string_view spec) const {
  for (const auto& p : presets_) {
    if (p.spec == spec) return &p;
  }
  return nullptr;
}

Result<FormatPtr> FormatRegistry::Parse(std::string_view spec_in) const {
  const std::string spec = Lower(spec_in);
  if (const PresetInfo* preset = FindPreset(spec)) return Parse(preset->spec);
  const size_t colon = spec.find(':');
  const std::string family_name = spec.substr(0, colon);
  const FamilyInfo* family = FindFamily(family_name);
  if (family == nullptr) {
    return InvalidArgument("unknown format '" + std::string(spec_in) +
                           "': not a preset or family (see `lowbit formats`)");
  }
  const std::string_view params_text =
      colon == std::string::npos ? std::string_view() : std::string_view(spec).substr(colon + 1);
  LOWBIT_ASSIGN_OR_RETURN(SpecParams params, SpecParams::Parse(family_name, params_text));
  LOWBIT_ASSIGN_OR_RETURN(FormatPtr format, family->make(params));
  LOWBIT_RETURN_IF_ERROR(params.Finish());
  return format;
}

const FormatRegistry& FormatRegistry::Get() {
  static const FormatRegistry* registry = [] {
    auto* r = new FormatRegistry();
    RegisterFloatFamily(*r);
    RegisterIntegerFamily(*r);
    RegisterMinifloatFamily(*r);
    RegisterBlockFpFamily(*r);
    RegisterBlockMinifloatFamily(*r);
    RegisterBlockLogFamily(*r);
    RegisterMxFamily(*r);
    RegisterFp6SplitFamily(*r);
    RegisterGgufFamily(*r);
    RegisterNf4Family(*r);
    RegisterAdditiveFamily(*r);
    // Every preset must name a spec its family accepts and prints back unchanged.
    for (const auto& p : r->presets_) {
      auto f = r->Parse(p.spec);
      if (!f.ok()) {
        std::fprintf(stderr, "lowbit: preset %s: %s\n", p.name.c_str(), f.status().message().c_str());
      }
      LOWBIT_CHECK(f.ok());
      if ((*f)->spec() != p.spec) {
        std::fprintf(stderr, "lowbit: preset %s: spec '%s' prints as '%s'\n", p.name.c_str(),
                     p.spec.c_str(), (*f)->spec().c_str());
      }
      LOWBIT_CHECK((*f)->spec() == p.spec);
      // A preset may carry its family's name only when it is the family's default ("nf4"), so the
      // bare name means the same thing whichever way it is read.
      if (const FamilyInfo* family = r->FindFamily(p.name)) {
        auto params = SpecParams::Parse(p.name, "");
        LOWBIT_CHECK(params.ok());
        auto bare = family->make(*params);
        LOWBIT_CHECK(bare.ok() && (*bare)->spec() == p.spec);
      }
    }
    return r;
  }();
  return *registry;
}

Result<FormatPtr> ParseFormat(std::string_view spec) { return FormatRegistry::Get().Parse(spec); }

}  // namespace lowbit
