// The sweep grid, point lists, Pareto marking and the report writers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "lowbit/format_registry.h"
#include "lowbit/sweep.h"

namespace lowbit {
namespace {

TEST(SweepGrid, CoversTheIssuesFamiliesAndWidths) {
  const std::vector<SweepPoint> grid = DefaultSweepGrid();
  std::set<std::string> families, labels;
  for (const SweepPoint& p : grid) {
    families.insert(p.family);
    labels.insert(p.family + " " + p.label);
    ASSERT_NE(p.weights, nullptr);
    EXPECT_TRUE(p.weights->can_quantize()) << p.weights->spec();
    if (p.acts) {
      EXPECT_TRUE(p.acts->can_quantize()) << p.acts->spec();
    }
    EXPECT_EQ(p.label, "W" + std::to_string(p.weight_width) +
                           (p.acts ? "A" + std::to_string(p.act_width) : std::string()));
    // Every grid cell is a named preset, so tables read well.
    EXPECT_NE(FormatRegistry::Get().PresetForSpec(p.weights->spec()), nullptr) << p.weights->spec();
  }
  for (const char* f : {"int", "minifloat", "bfp", "bm", "bl", "mxfp", "mxint", "fp6", "nf4", "gguf"}) {
    EXPECT_TRUE(families.count(f)) << f;
  }
  for (const char* l : {"int W8A8", "int W6A6", "int W5A5", "int W4A4", "int W4A8", "int W8", "int W6",
                        "int W5", "int W4", "int W3", "int W2", "bfp W6A6", "mxfp W4A8", "gguf W4A8",
                        "nf4 W4A4", "fp6 W6"}) {
    EXPECT_TRUE(labels.count(l)) << l;
  }
  EXPECT_FALSE(labels.count("nf4 W4A8"));  // nf4 has no 8-bit member
  EXPECT_EQ(labels.size(), grid.size());   // no duplicates
}

TEST(SweepPoints, ParsesListsWithSpecsAndRejectsBadItems) {
  Result<std::vector<SweepPoint>> p = ParseSweepPoints("q4_0 ; bfp6/bfp6;mx:elem=fp4_e2m1,block=32");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].label, "W4");
  EXPECT_EQ((*p)[1].label, "W6A6");
  EXPECT_EQ((*p)[2].weights->spec(), "mx:elem=fp4_e2m1,block=32,scale=floor,round=away");
  Result<std::vector<SweepPoint>> commas = ParseSweepPoints("q4_0,q8_0/q8_0");
  ASSERT_TRUE(commas.ok());
  EXPECT_EQ(commas->size(), 2u);
  EXPECT_FALSE(ParseSweepPoints("").ok());
  EXPECT_FALSE(ParseSweepPoints("nosuch").ok());
  EXPECT_FALSE(ParseSweepPoints("q4_k").ok());       // decode-only weights
  EXPECT_FALSE(ParseSweepPoints("q4_0/q6_k").ok());  // decode-only activations
}

SweepResult Result_(const char* w, const char* a, double bits, double kld) {
  SweepResult r;
  r.point.weights = *ParseFormat(w);
  if (a) r.point.acts = *ParseFormat(a);
  r.point.family = "f";
  r.point.label = a ? "WxAy" : "W";
  r.weights_name = w;
  r.acts_name = a ? a : "";
  r.linear_bits = bits;
  r.kld = kld;
  return r;
}

TEST(SweepPareto, FrontierPerKind) {
  std::vector<SweepResult> r = {
      Result_("q4_0", nullptr, 4.5, 0.10),   // frontier
      Result_("q8_0", nullptr, 8.5, 0.001),  // frontier
      Result_("bfp6", nullptr, 6.5, 0.20),   // dominated by q4_0 (fewer bits, lower KLD)
      Result_("mxfp4", nullptr, 4.25, 0.30), // frontier (fewest bits)
      Result_("q4_0", "q8_0", 4.5, 0.5),     // WxAy: its own frontier
      Result_("bfp6", "bfp6", 6.5, 0.6),     // dominated within WxAy
  };
  MarkParetoFrontier(r);
  EXPECT_TRUE(r[0].pareto);
  EXPECT_TRUE(r[1].pareto);
  EXPECT_FALSE(r[2].pareto);
  EXPECT_TRUE(r[3].pareto);
  EXPECT_TRUE(r[4].pareto);
  EXPECT_FALSE(r[5].pareto);

  SweepContext c;
  c.model = "m";
  const std::string csv = SweepCsv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);  // header + 6 rows
  const nlohmann::json j = nlohmann::json::parse(SweepJson(c, r));
  EXPECT_EQ(j["points"].size(), 6u);
  const std::string md = SweepMarkdown(c, r);
  EXPECT_NE(md.find("Pareto frontier, weight-only, 4-8 bits: mxfp4 (4.25 bits, KLD 0.3000), "
                    "q4_0 (4.50 bits, KLD 0.1000), q8_0 (8.50 bits, KLD 0.0010)\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("Pareto frontier, WxAy, 4-8 bits: q4_0 / q8_0 (4.50 bits, KLD 0.5000)\n"),
            std::string::npos)
      << md;
  const std::string svg = SweepSvg(c, r);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<') , std::count(svg.begin(), svg.end(), '>'));
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
