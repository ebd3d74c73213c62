// Sweep reports: Markdown table, CSV, JSON and an SVG plot (include/lowbit/sweep.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "lowbit/sweep.h"

namespace lowbit {
namespace {

std::string Kind(const SweepResult& r) { return r.point.acts ? "WxAy" : "weight-only"; }

// Results sorted for tables: weight-only first, then by bits, then KLD.
std::vector<const SweepResult*> Sorted(const std::vector<SweepResult>& results) {
  std::vector<const SweepResult*> out;
  for (const SweepResult& r : results) out.push_back(&r);
  std::stable_sort(out.begin(), out.end(), [](const SweepResult* a, const SweepResult* b) {
    if ((a->point.acts == nullptr) != (b->point.acts == nullptr)) return a->point.acts == nullptr;
    if (a->linear_bits != b->linear_bits) return a->linear_bits < b->linear_bits;
    return a->kld < b->kld;
  });
  return out;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string SweepMarkdown(const SweepContext& c, const std::vector<SweepResult>& results) {
  std::string md = fmt::format(
      "# lowbit sweep: {}\n\ntext: {}, ctx {}, {} chunks, {} scored tokens; reference PPL {:.4f} "
      "({})\n\nbits = bits per weight of the quantized linear layers (shared fields counted); "
      "arith = arithmetic density vs fp32, an estimate (docs/cost_model.md); * = on the Pareto "
      "frontier of KLD vs bits within its kind.\n\n",
      c.model, c.text, c.ctx, c.chunks, c.scored_tokens, c.reference_ppl, c.reference_note);
  md +=
      "| kind | family | point | weights | acts | bits | model bits | mem x | act mem x | arith x "
      "| PPL | KLD | top-1 | quant s | eval s | pareto |\n"
      "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|\n";
  for (const SweepResult* r : Sorted(results)) {
    md += fmt::format(
        "| {} | {} | {} | {} | {} | {:.3f} | {:.3f} | {:.2f} | {:.2f} | {:.2f} | {:.4f} | {:.5f} "
        "| {:.2f}% | {:.1f} | {:.1f} | {} |\n",
        Kind(*r), r->point.family, r->point.label, r->weights_name,
        r->acts_name.empty() ? "f32" : r->acts_name, r->linear_bits, r->model_bits,
        r->memory_density, r->act_memory_density, r->arithmetic_density, r->ppl, r->kld,
        100.0 * r->top1, r->quantize_seconds, r->eval_seconds, r->pareto ? "*" : "");
  }
  for (const bool with_acts : {false, true}) {
    md += fmt::format("\nPareto frontier, {}, 4-8 bits: ", with_acts ? "WxAy" : "weight-only");
    std::string list;
    for (const SweepResult* r : Sorted(results)) {
      if (!r->pareto || (r->point.acts != nullptr) != with_acts) continue;
      if (r->linear_bits < 4.0 || r->linear_bits > 8.75) continue;
      if (!list.empty()) list += ", ";
      list += fmt::format("{}{} ({:.2f} bits, KLD {:.4f})", r->weights_name,
                          r->acts_name.empty() ? "" : " / " + r->acts_name, r->linear_bits, r->kld);
    }
    md += (list.empty() ? "none" : list) + "\n";
  }
  return md;
}

std::string SweepCsv(const std::vector<SweepResult>& results) {
  std::string csv =
      "kind,family,point,weights,weights_spec,acts,acts_spec,linear_bits,model_bits,"
      "memory_density,act_bits,act_memory_density,arithmetic_density,ppl,ppl_stderr,kld,"
      "kld_stderr,top1,quantize_s,eval_s,pareto\n";
  for (const SweepResult* r : Sorted(results)) {
    csv += fmt::format(
        "{},{},{},{},{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.8f},"
        "{:.8f},{:.6f},{:.3f},{:.3f},{}\n",
        Kind(*r), r->point.family, r->point.label, CsvField(r->weights_name),
        CsvField(r->point.weights->spec()), CsvField(r->acts_name.empty() ? "f32" : r->acts_name),
        CsvField(r->point.acts ? r->point.acts->spec() : "float:type=f32"), r->linear_bits,
        r->model_bits, r->memory_density, r->act_bits, r->act_memory_density,
        r->arithmetic_density, r->ppl, r->ppl_stderr, r->kld, r->kld_stderr, r->top1,
        r->quantize_seconds, r->eval_seconds, r->pareto ? 1 : 0);
  }
  return csv;
}

std::string SweepJson(const SweepContext& c, const std::vector<SweepResult>& results) {
  nlohmann::json points = nlohmann::json::array();
  for (const SweepResult* r : Sorted(results)) {
    points.push_back({{"kind", Kind(*r)},
                      {"family", r->point.family},
                      {"point", r->point.label},
                      {"weights", r->weights_name},
                      {"weights_spec", r->point.weights->spec()},
                      {"acts", r->acts_name.empty() ? "f32" : r->acts_name},
                      {"acts_spec", r->point.acts ? r->point.acts->spec() : "float:type=f32"},
                      {"linear_bits_per_weight", r->linear_bits},
                      {"model_bits_per_weight", r->model_bits},
                      {"memory_density", r->memory_density},
                      {"act_bits", r->act_bits},
                      {"act_memory_density", r->act_memory_density},
                      {"arithmetic_density_estimate", r->arithmetic_density},
                      {"ppl", r->ppl},
                      {"ppl_stderr", r->ppl_stderr},
                      {"kld", r->kld},
                      {"kld_stderr", r->kld_stderr},
                      {"top1_agreement", r->top1},
                      {"quantize_seconds", r->quantize_seconds},
                      {"eval_seconds", r->eval_seconds},
                      {"pareto", r->pareto}});
  }
  nlohmann::json j = {{"model", c.model},         {"text", c.text},
                      {"ctx", c.ctx},             {"chunks", c.chunks},
                      {"scored_tokens", c.scored_tokens}, {"reference_ppl", c.reference_ppl},
                      {"reference", c.reference_note},    {"points", points}};
  return j.dump(2) + "\n";
}

std::string SweepSvg(const SweepContext& c, const std::vector<SweepResult>& results) {
  constexpr double kW = 960, kH = 600, kLeft = 80, kRight = 30, kTop = 50, kBottom = 60;
  constexpr double kMinKld = 1e-5;
  double x_min = 1e9, x_max = 0, y_min = 1e9, y_max = -1e9;
  for (const SweepResult& r : results) {
    const double y = std::log10(std::max(r.kld, kMinKld));
    x_min = std::min(x_min, r.linear_bits);
    x_max = std::max(x_max, r.linear_bits);
    y_min = std::min(y_min, y);
    y_max = std::max(y_max, y);
  }
  if (results.empty()) x_min = 0, x_max = 1, y_min = -1, y_max = 0;
  x_min = std::floor(x_min) - 0.5;
  x_max = std::ceil(x_max) + 0.5;
  y_min = std::floor(y_min);
  y_max = std::ceil(y_max);
  if (y_max <= y_min) y_max = y_min + 1;
  auto px = [&](double bits) { return kLeft + (bits - x_min) / (x_max - x_min) * (kW - kLeft - kRight); };
  auto py = [&](double kld) {
    const double y = std::log10(std::max(kld, kMinKld));
    return kTop + (y_max - y) / (y_max - y_min) * (kH - kTop - kBottom);
  };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n",
      kW, kH, kLeft, XmlEscape("KL divergence vs bits per weight: " + c.model));
  // Axes, grid lines and tick labels.
  for (double b = std::ceil(x_min); b <= x_max; b += 1.0) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(b), kTop, kH - kBottom, kH - kBottom + 16, b);
  }
  for (double e = y_min; e <= y_max; e += 1.0) {
    const double y = kTop + (y_max - e) / (y_max - y_min) * (kH - kTop - kBottom);
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">1e{5}</text>\n",
        kLeft, y, kW - kRight, kLeft - 6, y + 4, static_cast<int>(e));
  }
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight (quantized linears)</text>\n"
      "<text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\">KL divergence vs "
      "unquantized (log scale)</text>\n",
      kLeft, kTop, kW - kLeft - kRight, kH - kTop - kBottom, (kLeft + kW - kRight) / 2, kH - 18,
      (kTop + kH - kBottom) / 2);
  const char* kColors[2] = {"#1f77b4", "#d62728"};  // weight-only, WxAy
  for (int group = 0; group < 2; ++group) {
    const char* color = kColors[group];
    std::vector<const SweepResult*> frontier;
    for (const SweepResult& r : results) {
      if ((r.point.acts != nullptr) != (group == 1)) continue;
      const double x = px(r.linear_bits), y = py(r.kld);
      if (group == 0) {
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\" "
                           "fill-opacity=\"0.5\"><title>{}</title></circle>\n",
                           x, y, color, XmlEscape(r.weights_name + " " + r.point.label));
      } else {
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"7\" height=\"7\" fill=\"{}\" "
                           "fill-opacity=\"0.5\"><title>{}</title></rect>\n",
                           x - 3.5, y - 3.5, color,
                           XmlEscape(r.weights_name + "/" + r.acts_name + " " + r.point.label));
      }
      if (r.pareto) frontier.push_back(&r);
    }
    std::sort(frontier.begin(), frontier.end(), [](const SweepResult* a, const SweepResult* b) {
      return a->linear_bits < b->linear_bits;
    });
    std::string path;
    for (const SweepResult* r : frontier) {
      path += fmt::format("{:.1f},{:.1f} ", px(r->linear_bits), py(r->kld));
      const std::string label =
          r->point.acts ? r->weights_name + "/" + r->acts_name : r->weights_name;
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\">{}</text>\n",
                         px(r->linear_bits) + 6, py(r->kld) + (group == 0 ? -6 : 14), color,
                         XmlEscape(label));
    }
    if (!path.empty()) {
      svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" "
                         "stroke-width=\"1.5\"/>\n",
                         path, color);
    }
  }
  svg += fmt::format(
      "<circle cx=\"{0}\" cy=\"{1}\" r=\"4\" fill=\"{2}\"/><text x=\"{3}\" y=\"{4}\">weight-only "
      "(Pareto frontier: line)</text>\n<rect x=\"{5}\" y=\"{6}\" width=\"8\" height=\"8\" "
      "fill=\"{7}\"/><text x=\"{3}\" y=\"{8}\">weights and activations (WxAy)</text>\n",
      kW - 300, kTop + 14, kColors[0], kW - 290, kTop + 18, kW - 304, kTop + 30, kColors[1],
      kTop + 38);
  svg += "</svg>\n";
  return svg;
}

}  // namespace lowbit
