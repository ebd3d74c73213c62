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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  }
  return exit_code;
}
