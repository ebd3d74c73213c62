// `lowbit export-hf-aqlm IN.gguf OUTDIR [--force] [--skip-tokenizer]`: an AQLM GGUF (from
// `lowbit quantize --method aqlm:...`) written as a Hugging Face AQLM checkpoint folder
// (docs/aqlm_hf.md).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "lowbit/gguf.h"
#include "quant/aqlm/export_hf.h"

namespace lowbit::cli {
namespace {

struct ExportHfAqlmCliOptions {
  std::string model;
  std::string outdir;
  bool force = false;
  bool skip_tokenizer = false;
};

int RunExportHfAqlm(const ExportHfAqlmCliOptions& o) {
  Result<GgufFile> opened = GgufFile::Open(o.model);
  if (!opened.ok()) return ReportError(opened.status());
  auto file = std::make_shared<const GgufFile>(std::move(opened).value());
  Result<LlamaModel> model = LoadFromGguf(file);
  if (!model.ok()) return ReportError(model.status());
  ExportHfAqlmOptions options;
  options.force = o.force;
  options.skip_tokenizer = o.skip_tokenizer;
  if (Status s = ExportHfAqlm(*model, file.get(), o.outdir, options); !s.ok()) {
    return ReportError(s);
  }
  fmt::print("wrote {}: model.safetensors, config.json{}\n", o.outdir,
             o.skip_tokenizer ? "" : ", tokenizer.json, tokenizer_config.json");
  return kExitOk;
}

}  // namespace

void AddExportHfAqlmCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ExportHfAqlmCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export-hf-aqlm",
      "Write an AQLM GGUF (lowbit quantize --method aqlm:...) as a Hugging Face AQLM folder:\n"
      "model.safetensors (codes / codebooks / scales per linear, other tensors float16),\n"
      "config.json with quantization_config, tokenizer.json and tokenizer_config.json.\n"
      "Loads in transformers (quant_method \"aqlm\") and in lowbit (a folder path).");
  cmd->add_option("model", o->model, "input AQLM GGUF file")->required();
  cmd->add_option("outdir", o->outdir, "output folder (written atomically)")->required();
  cmd->add_flag("--force", o->force, "replace OUTDIR when it exists and is not empty");
  cmd->add_flag("--skip-tokenizer", o->skip_tokenizer,
                "write no tokenizer files (needed for SentencePiece GGUF tokenizers)");
  cmd->callback([o, exit_code] { *exit_code = RunExportHfAqlm(*o); });
}

}  // namespace lowbit::cli
