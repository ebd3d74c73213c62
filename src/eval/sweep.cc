// The sweep grid, user point lists and the Pareto frontier (include/lowbit/sweep.h).
#include "lowbit/sweep.h"

#include <algorithm>
#include <map>

#include "lowbit/format_registry.h"

namespace lowbit {
namespace {

// Format of each grid family at each element width (bits of one element, shared fields aside).
// Weights and activations of a WxAy point use the same family at their two widths. Scaled
// minifloats (fp16 scale per 32) stand for the minifloat family: unscaled fp4/fp6 cannot reach
// weights of magnitude ~0.02. Decode-only GGUF k-quants cannot be targets, so gguf stops at 4.
struct FamilyWidths {
  const char* family;
  std::map<int, const char*> spec_by_width;
};

const std::vector<FamilyWidths>& GridFamilies() {
  static const std::vector<FamilyWidths> kFamilies = {
      {"int",
       {{8, "int8_g32"},
        {6, "int6_g32"},
        {5, "int5_g32"},
        {4, "int4_g32"},
        {3, "int3_g32_asym"},
        {2, "int2_g32_asym"}}},
      {"minifloat",
       {{8, "fp8_e4m3_g32"},
        {6, "fp6_e2m3_g32"},
        {5, "fp5_e2m2_g32"},
        {4, "fp4_e2m1_g32"},
        {3, "fp3_e1m1_g32"}}},
      {"bfp", {{8, "bfp8"}, {6, "bfp6"}, {5, "bfp5"}, {4, "bfp4"}, {3, "bfp3"}}},
      {"bm", {{8, "bm8"}, {6, "bm6"}, {5, "bm5"}, {4, "bm4"}, {3, "bm3"}}},
      {"bl",
       {{8, "bl8"}, {6, "bl6"}, {5, "bl5"}, {4, "bl4"}, {3, "bl3"},
        {2, "bl2"}}},
      {"mxfp", {{8, "mxfp8_e4m3"}, {6, "mxfp6_e2m3"}, {4, "mxfp4"}}},
      {"mxint", {{8, "mxint8"}}},
      {"fp6", {{6, "fp6_e3m2_split"}}},
      {"nf4", {{4, "nf4"}}},
      {"gguf", {{8, "q8_0"}, {5, "q5_0"}, {4, "q4_0"}}},
  };
  return kFamilies;
}

FormatPtr MustParse(const std::string& spec) {
  Result<FormatPtr> f = ParseFormat(spec);
  LOWBIT_CHECK(f.ok());  // the grid is fixed: a bad entry is a programming error (tested)
  return *f;
}

}  // namespace

std::vector<SweepPoint> DefaultSweepGrid() {
  constexpr std::pair<int, int> kWxAy[] = {{8, 8}, {6, 6}, {5, 5}, {4, 4}, {4, 8}};
  constexpr int kWeightOnly[] = {8, 6, 5, 4, 3, 2};
  std::vector<SweepPoint> points;
  for (const FamilyWidths& f : GridFamilies()) {
    const auto& widths = f.spec_by_width;
    for (const auto& [w, a] : kWxAy) {
      if (!widths.count(w) || !widths.count(a)) continue;
      points.push_back({f.family, "W" + std::to_string(w) + "A" + std::to_string(a),
                        MustParse(widths.at(w)), MustParse(widths.at(a)), w, a});
    }
    for (int w : kWeightOnly) {
      if (!widths.count(w)) continue;
      points.push_back({f.family, "W" + std::to_string(w), MustParse(widths.at(w)), nullptr, w, 0});
    }
  }
  return points;
}

Result<std::vector<SweepPoint>> ParseSweepPoints(const std::string& list) {
  const bool has_spec = list.find(':') != std::string::npos;
  std::vector<std::string> items;
  std::string current;
  for (char c : list) {
    const bool sep = c == ';' || c == ' ' || c == '\t' || c == '\n' || (c == ',' && !has_spec);
    if (sep) {
      if (!current.empty()) items.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) items.push_back(current);
  if (items.empty()) return InvalidArgument("--formats: no formats given");
  std::vector<SweepPoint> points;
  for (const std::string& item : items) {
    const size_t slash = item.find('/');
    const std::string w = item.substr(0, slash);
    Result<FormatPtr> weights = ParseFormat(w);
    if (!weights.ok()) {
      return InvalidArgument("--formats item '" + item + "': " + weights.status().message());
    }
    SweepPoint p;
    p.family = std::string((*weights)->family());
    p.weights = *weights;
    p.weight_width = static_cast<int>((*weights)->NominalBitsPerWeight());  // shared fields aside
    p.label = "W";
    if (slash != std::string::npos) {
      Result<FormatPtr> acts = ParseFormat(item.substr(slash + 1));
      if (!acts.ok()) {
        return InvalidArgument("--formats item '" + item + "': " + acts.status().message());
      }
      if (!(*acts)->can_quantize()) {
        return InvalidArgument("--formats item '" + item + "': activation format " +
                               (*acts)->spec() + " is decode-only");
      }
      p.acts = *acts;
      p.act_width = static_cast<int>((*acts)->NominalBitsPerWeight());
    }
    if (!p.weights->can_quantize()) {
      return InvalidArgument("--formats item '" + item + "': " + p.weights->spec() +
                             " is decode-only: it cannot be a target");
    }
    p.label = "W" + std::to_string(p.weight_width) +
              (p.acts ? "A" + std::to_string(p.act_width) : std::string());
    points.push_back(std::move(p));
  }
  return points;
}

void MarkParetoFrontier(std::vector<SweepResult>& results) {
  for (SweepResult& r : results) {
    r.pareto = true;
    for (const SweepResult& o : results) {
      if (&o == &r || (o.point.acts == nullptr) != (r.point.acts == nullptr)) continue;
      const bool dominates = o.linear_bits <= r.linear_bits && o.kld <= r.kld &&
                             (o.linear_bits < r.linear_bits || o.kld < r.kld);
      if (dominates) {
        r.pareto = false;
        break;
      }
    }
  }
}

}  // namespace lowbit
