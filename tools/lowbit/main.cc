// lowbit: sub-8-bit quantization toolkit and runtime. One subcommand per file in this folder.
#include <cstdio>

#include "commands.h"
#include "lowbit/format_registry.h"

namespace lowbit::cli {

int ReportError(const Status& status) {
  std::fprintf(stderr, "lowbit: %s\n", status.message().c_str());
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kDataLoss:
    case StatusCode::kUnimplemented: return kExitBadInput;
    default: return kExitFailure;
  }
}

Status QuantizeModelInPlace(const std::string& spec, LlamaModel& model) {
  if (spec.empty()) return Status::Ok();
  Result<FormatPtr> format = ParseFormat(spec);
  if (!format.ok()) return format.status();
  Result<LlamaModel> quantized = QuantizeModelWeights(model, *format);
  if (!quantized.ok()) return quantized.status();
  model = std::move(quantized).value();
  return Status::Ok();
}

void ActivationCliOptions::AddTo(CLI::App* cmd) {
  cmd->add_option("--acts", linear_inputs,
                  "activation format (WxAy): input rows of every linear layer, per token");
  cmd->add_option("--attn-acts", attention,
                  "format of both operands of the two attention matmuls (q, k, softmax, v rows)");
  cmd->add_option("--kv-acts", kv_cache, "format of keys and values written to the KV cache");
}

Status ApplyActivationFormats(const ActivationCliOptions& options, LlamaModel& model) {
  const std::pair<const std::string*, FormatPtr*> slots[] = {
      {&options.linear_inputs, &model.activations.linear_inputs},
      {&options.attention, &model.activations.attention},
      {&options.kv_cache, &model.activations.kv_cache}};
  for (const auto& [spec, slot] : slots) {
    if (spec->empty()) continue;
    Result<FormatPtr> format = ParseFormat(*spec);
    if (!format.ok()) return format.status();
    *slot = *format;
  }
  return ValidateActivationFormats(model.activations);
}

}  // namespace lowbit::cli

int main(int argc, char** argv) {
  using namespace lowbit::cli;
  CLI::App app("lowbit: sub-8-bit number formats, quantization and a runtime for LLMs", "lowbit");
  app.require_subcommand(1);
  int exit_code = kExitOk;
  AddFormatsCommand(app, &exit_code);
  AddQdqCommand(app, &exit_code);
  AddRunCommand(app, &exit_code);
  AddEvalCommand(app, &exit_code);
  AddQuantizeCommand(app, &exit_code);
  AddSweepCommand(app, &exit_code);
  AddBenchCommand(app, &exit_code);
  AddExportHfAqlmCommand(app, &exit_code);
  AddFinetuneAqlmCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  }
  return exit_code;
}
