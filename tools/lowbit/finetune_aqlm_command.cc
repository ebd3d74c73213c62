// `lowbit finetune-aqlm -m STUDENT.gguf --teacher REF.gguf -o OUT.gguf [--calib self|FILE]
//  [--epochs N] [--lr X] [--batch N] [--json]`: AQLM global fine-tuning (include/lowbit/aqlm.h)
// of a file `lowbit quantize --method aqlm:...` wrote, against the model it came from; the tuned
// file is written atomically. See docs/quantize.md.
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/aqlm.h"
#include "lowbit/quantize.h"
#include "lowbit/tokenizer.h"

namespace lowbit::cli {
namespace {

struct FinetuneAqlmCliOptions {
  std::string model;    // the AQLM student
  std::string teacher;  // the model it was quantized from
  std::string out;
  CalibrationCliOptions calibration;
  AqlmGlobalFineTuneOptions tune;
  bool no_norms = false;
  std::string lr_schedule = "constant";
  bool json = false;
  bool quiet = false;
};

int RunFinetuneAqlm(FinetuneAqlmCliOptions o) {
  const auto start = std::chrono::steady_clock::now();
  Result<LoadedModel> teacher = LoadModelWithTokenizer(o.teacher, "");
  if (!teacher.ok()) return ReportError(teacher.status());
  Result<LoadedModel> student = LoadModelWithTokenizer(o.model, "");
  if (!student.ok()) return ReportError(student.status());
  if (!o.quiet) {
    fmt::print(stderr, "finetune-aqlm: calibration {} ({} sequences of {} tokens), {} epochs, lr {} ({}), batch {}\n",
               o.calibration.calib, o.calibration.sequences, o.calibration.length, o.tune.epochs, o.tune.lr,
               o.lr_schedule, o.tune.batch_sequences);
  }
  // Calibration tokens come from the teacher's tokenizer (self: sampled from the teacher).
  auto seqs = CalibrationSequences(o.calibration, *teacher, o.tune.n_threads, o.quiet);
  if (!seqs.ok()) return ReportError(seqs.status());
  o.tune.tune_norms = !o.no_norms;
  o.tune.cosine_lr = o.lr_schedule == "cosine";
  LlamaModel tuned = student->model;
  using Stage = AqlmGlobalFineTuneProgress::Stage;
  auto r = FineTuneAqlmGlobal(teacher->model, &tuned, *seqs, o.tune, [&](const AqlmGlobalFineTuneProgress& p) {
    if (o.quiet) return;
    switch (p.stage) {
      case Stage::kTeacher:
        if (p.step % std::max<int64_t>(1, p.steps / 8) != 0 && p.step != p.steps) break;  // ~8 lines
        fmt::print(stderr, "[teacher] layer {}/{}, {:.0f} s\n", p.step, p.steps, p.elapsed_seconds);
        break;
      case Stage::kValidation:
        fmt::print(stderr, "[epoch {}/{}] {}held-out KL {:.5f}{}, {:.0f} s\n", p.epoch, p.epochs,
                   o.tune.code_fraction > 0.0 && p.epoch > 0 ? fmt::format("code step: {} groups changed; ", p.codes_changed)
                                                             : std::string(),
                   p.kl, p.best ? " (best)" : "", p.elapsed_seconds);
        break;
      case Stage::kStep:
        fmt::print(stderr, "[epoch {}/{}] step {}/{} train KL {:.5f}, {:.0f} s, ETA {:.0f} s\n", p.epoch, p.epochs,
                   p.step, p.steps, p.kl, p.elapsed_seconds, p.eta_seconds);
        break;
    }
  });
  if (!r.ok()) return ReportError(r.status());

  QuantizeOptions q;
  q.prequantized = &tuned;
  q.activations = student->model.activations;
  q.n_threads = o.tune.n_threads;
  Result<QuantizeReport> report = QuantizeGgufFile(o.model, o.out, q);
  if (!report.ok()) return ReportError(report.status());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    const nlohmann::json j = {{"model", o.model},
                              {"teacher", o.teacher},
                              {"out", o.out},
                              {"calib", o.calibration.calib},
                              {"calib_sequences", static_cast<int64_t>(seqs->size())},
                              {"calib_length", o.calibration.length},
                              {"epochs", o.tune.epochs},
                              {"lr", o.tune.lr},
                              {"lr_schedule", o.lr_schedule},
                              {"batch_sequences", o.tune.batch_sequences},
                              {"tune_norms", o.tune.tune_norms},
                              {"code_fraction", o.tune.code_fraction},
                              {"code_step", o.tune.code_step},
                              {"code_sign", o.tune.code_sign},
                              {"codes_changed", r->codes_changed},
                              {"train_sequences", r->n_train},
                              {"val_sequences", r->n_val},
                              {"steps", r->steps},
                              {"val_kl_before", r->val_before},
                              {"val_kl_after", r->val_after},
                              {"best_epoch", r->best_epoch},
                              {"seconds", seconds}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("wrote {}: held-out KL {:.5f} -> {:.5f} (kept epoch {} of {}; {} training / {} held-out sequences), "
               "{:.1f} s\n",
               o.out, r->val_before, r->val_after, r->best_epoch, o.tune.epochs, r->n_train, r->n_val, seconds);
  }
  return kExitOk;
}

}  // namespace

void AddFinetuneAqlmCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<FinetuneAqlmCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "finetune-aqlm",
      "AQLM global fine-tuning: tune the codebooks, scales and norm gains of an AQLM GGUF\n"
      "(lowbit quantize --method aqlm:...; codes frozen unless --code-fraction) so its next-token\n"
      "distribution matches the teacher's (mean KL over calibration tokens), keeping the best\n"
      "epoch on held-out calibration sequences. Writes a new GGUF (atomically).");
  cmd->add_option("-m,--model", o->model, "AQLM GGUF to tune (the student)")->required();
  cmd->add_option("--teacher", o->teacher, "the model the student was quantized from")->required();
  cmd->add_option("-o,--out", o->out, "output GGUF file (written atomically)")->required();
  o->calibration.AddTo(cmd);
  cmd->add_option("--epochs", o->tune.epochs, "passes over the training sequences")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--lr", o->tune.lr, "Adam learning rate, relative to each parameter group's RMS")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr-schedule", o->lr_schedule,
                  "constant, or cosine (decays to ~0 over all the steps)")
      ->capture_default_str()->check(CLI::IsMember({"constant", "cosine"}));
  cmd->add_option("--batch", o->tune.batch_sequences, "training sequences per Adam step")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--val-fraction", o->tune.val_fraction, "share of the sequences held out for keep-best")
      ->capture_default_str()->check(CLI::Range(1e-6, 0.999999));
  cmd->add_option("--code-fraction", o->tune.code_fraction,
                  "> 0: after every epoch, a discrete code step (PV-tuning) may change this share of each "
                  "matrix's groups")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--code-step", o->tune.code_step,
                  "the code step's target distance, relative to the RMS weight")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--code-sign", o->tune.code_sign,
                "the code step's target moves by the gradient's sign (scaled by its RMS) per weight");
  cmd->add_flag("--no-norms", o->no_norms, "tune codebooks and scales only (norm gains stay)");
  cmd->add_option("-t,--threads", o->tune.n_threads, "threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_flag("--json", o->json, "print the result as JSON on stdout");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress lines");
  cmd->callback([o, exit_code] { *exit_code = RunFinetuneAqlm(*o); });
}

}  // namespace lowbit::cli
