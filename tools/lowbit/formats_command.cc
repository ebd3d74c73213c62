// `lowbit formats [--json]`: every registered preset, straight from the format registry.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <memory>

#include "commands.h"
#include "lowbit/format_registry.h"

namespace lowbit::cli {
namespace {

std::string BlockText(const Format& f) {
  if (f.block_size() > 0) return std::to_string(f.block_size());
  return f.block_size() == 0 ? "row" : "tensor";
}

int RunFormats(bool json) {
  const FormatRegistry& registry = FormatRegistry::Get();
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    fmt::print("{:<16} {:<10} {:>8} {:>8} {:>7}  {:<44} {}\n", "name", "family", "bits/w",
               "density", "block", "spec", "description");
  }
  for (const PresetInfo& preset : registry.presets()) {
    Result<FormatPtr> parsed = registry.Parse(preset.spec);
    LOWBIT_CHECK(parsed.ok());  // FormatRegistry::Get() verified every preset already
    const Format& f = **parsed;
    const double bpw = f.NominalBitsPerWeight();
    if (json) {
      nlohmann::json row;
      row["name"] = preset.name;
      row["family"] = std::string(f.family());
      row["spec"] = preset.spec;
      row["bits_per_weight"] = bpw;
      row["memory_density"] = 32.0 / bpw;
      row["block_size"] = f.block_size();
      row["block_bytes"] = f.block_bytes();
      row["can_quantize"] = f.can_quantize();
      row["gguf_type"] = f.gguf_type() ? nlohmann::json(*f.gguf_type()) : nlohmann::json(nullptr);
      row["description"] = preset.description;
      const FamilyInfo* family = registry.FindFamily(f.family());
      row["doc"] = family ? family->doc_page : "";
      rows.push_back(row);
    } else {
      fmt::print("{:<16} {:<10} {:>8.4f} {:>7.3f}x {:>7}  {:<44} {}\n", preset.name, f.family(), bpw,
                 32.0 / bpw, BlockText(f), preset.spec, preset.description);
    }
  }
  if (json) {
    fmt::print("{}\n", rows.dump(2));
  } else {
    fmt::print("\n{} presets in {} families. bits/w counts every shared field (4096x4096 tensor);"
               " density = 32 / bits.\nFamilies and their parameters (spec = family:key=value,...):\n",
               registry.presets().size(), registry.families().size());
    for (const FamilyInfo& family : registry.families()) {
      fmt::print("  {:<10} {}: {}\n", family.name, family.title, family.params_help);
    }
  }
  return kExitOk;
}

}  // namespace

void AddFormatsCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("formats", "List every registered number format preset");
  auto json = std::make_shared<bool>(false);  // owned by the callback below
  cmd->add_flag("--json", *json, "Print a JSON array instead of a table");
  cmd->callback([=] { *exit_code = RunFormats(*json); });
}

}  // namespace lowbit::cli
