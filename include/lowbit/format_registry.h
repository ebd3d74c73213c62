// The format registry: the one place where every number format is declared.
//
// Spec grammar (docs/formats/README.md):
//   spec   := preset | family [ ":" param { "," param } ]
//   param  := key "=" value
//   preset, family, key := [a-z0-9_]+        value := [a-z0-9_.+-]+
// Names are case-insensitive ("Q4_0" == "q4_0"). A family's canonical spec lists every parameter
// in the family's own order, so parse -> print -> parse is the identity.
//
// The CLI, `--help`, file metadata, tests and benchmarks iterate this registry; nothing else
// switches on a format.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

// Parsed "key=value" parameters of one spec, with typed getters that report which key was wrong.
class SpecParams {
 public:
  static Result<SpecParams> Parse(std::string_view family, std::string_view text);

  // Each getter consumes its key; Finish() then rejects keys nobody asked for.
  Result<int64_t> GetInt(std::string_view key, int64_t default_value, int64_t min_value,
                         int64_t max_value);
  Result<std::string> GetEnum(std::string_view key, std::string_view default_value,
                              const std::vector<std::string_view>& choices);
  // Raw value (already checked against the value grammar), for values like "tensor|row|<n>".
  std::string GetString(std::string_view key, std::string_view default_value);
  Status Finish() const;

  const std::string& family() const { return family_; }

 private:
  std::string family_;
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, bool, std::less<>> used_;
};

struct FamilyInfo {
  std::string name;         // e.g. "int", "exmy", "bfp"
  std::string title;        // e.g. "Integer (uniform) quantization"
  std::string params_help;  // e.g. "bits=2..8, mode=sym|asym, scale=tensor|row|<group>"
  std::string doc_page;     // e.g. "docs/formats/integer.md"
  std::function<Result<FormatPtr>(SpecParams&)> make;
};

struct PresetInfo {
  std::string name;         // e.g. "q4_0"
  std::string spec;         // the canonical family spec it stands for
  std::string description;  // one line for `lowbit formats`
};

class FormatRegistry {
 public:
  // The registry with every family of lowbit registered (built on first use).
  static const FormatRegistry& Get();

  void AddFamily(FamilyInfo family);
  void AddPreset(PresetInfo preset);

  // Parses a preset name or a family spec into a format.
  Result<FormatPtr> Parse(std::string_view spec) const;

  const std::vector<FamilyInfo>& families() const { return families_; }
  const std::vector<PresetInfo>& presets() const { return presets_; }
  const FamilyInfo* FindFamily(std::string_view name) const;
  const PresetInfo* FindPreset(std::string_view name) const;
  // The preset whose canonical spec equals spec, if any (for friendly names in reports).
  const PresetInfo* PresetForSpec(std::string_view spec) const;

 private:
  std::vector<FamilyInfo> families_;
  std::vector<PresetInfo> presets_;
};

// Shortcut for FormatRegistry::Get().Parse(spec).
Result<FormatPtr> ParseFormat(std::string_view spec);

}  // namespace lowbit
