// Calibration token sequences for the calibrated methods (`quantize --method aqlm:...`,
// `finetune-aqlm`): a text file cut into BOS-led sequences, or sequences sampled from the model.
#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "commands.h"
#include "lowbit/aqlm.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {

void CalibrationCliOptions::AddTo(CLI::App* cmd) {
  cmd->add_option("--calib", calib, "calibration: a text file, or 'self' (sampled from the model)")
      ->capture_default_str();
  cmd->add_option("--calib-seqs", sequences, "calibration sequences")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--calib-len", length, "tokens per calibration sequence (BOS included)")
      ->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--calib-skip", skip_tokens,
                  "text only: tokens skipped before the first sequence (keeps the text's head, e.g. the "
                  "chunks an evaluation reads, out of the calibration)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
}

Result<std::vector<std::vector<int32_t>>> CalibrationSequences(const CalibrationCliOptions& o,
                                                               const LoadedModel& loaded, int threads,
                                                               bool quiet) {
  const int32_t bos = std::max(0, loaded.tokenizer->bos());
  if (o.calib == "self") {
    if (o.skip_tokens != 0) return InvalidArgument("--calib-skip: applies to a calibration text, not to --calib self");
    AqlmOptions a;
    a.n_sequences = o.sequences;
    a.seq_len = o.length;
    a.bos = bos;
    a.n_threads = threads;
    return SampleCalibration(loaded.model, a, [&](const AqlmProgress& p) {
      // About 16 lines for the whole sampling.
      const int64_t every = std::max<int64_t>(1, p.calibration_total / 16);
      if (!quiet && (p.calibration_done % every == 0 || p.calibration_done == p.calibration_total)) {
        fmt::print(stderr, "[calibration] sampled {}/{} sequences, {:.0f} s, ETA {:.0f} s\n",
                   p.calibration_done, p.calibration_total, p.elapsed_seconds, p.eta_seconds);
      }
    });
  }
  std::ifstream in(o.calib, std::ios::binary);
  if (!in) return NotFound(o.calib + ": cannot open the calibration text");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<int32_t> ids = loaded.tokenizer->Encode(text, false);
  auto cut = CutCalibrationText(ids, bos, o.sequences, o.length, o.skip_tokens);
  if (!cut.ok()) return InvalidArgument(o.calib + ": " + cut.status().message());
  if (!quiet) {
    fmt::print(stderr, "[calibration] {} sequences of {} tokens from {} (tokens {}..{} of {})\n", cut->size(),
               o.length, o.calib, o.skip_tokens,
               o.skip_tokens + static_cast<int64_t>(cut->size()) * (o.length - 1), ids.size());
  }
  return cut;
}

}  // namespace lowbit::cli
