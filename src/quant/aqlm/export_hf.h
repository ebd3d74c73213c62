// Export of an AQLM-quantized lowbit model as a Hugging Face checkpoint folder in the AQLM layout
// that transformers (AqlmConfig, quant_method "aqlm") and vLLM load, and that lowbit's HF loader
// reads back (src/runtime/load_hf.cc). Layout and mapping: docs/aqlm_hf.md, src/runtime/aqlm_hf.h.
//
// OUTDIR/
//   model.safetensors      per AQLM linear <prefix>.codes / .codebooks / .scales; everything else
//                          (embeddings, norms, biases, an untied lm_head, and any linear that is not
//                          AQLM or whose input width is not a multiple of g) as F16 .weight / .bias
//   config.json            LlamaForCausalLM / Qwen2ForCausalLM fields, torch_dtype "float16",
//                          quantization_config {quant_method "aqlm", in_group_size, out_group_size 1,
//                          num_codebooks, nbits_per_codebook, linear_weights_not_to_quantize}
//   tokenizer.json, tokenizer_config.json   from the GGUF tokenizer (byte-level BPE only)
//
// RoPE: GGUF "llama" files store q/k rows with rotated pairs adjacent; HF stores them half a head
// apart, so those rows are permuted back (for AQLM: each row's scale and codes move, the codebooks
// are shared). The folder is written to OUTDIR.tmp-XXXXXX next to OUTDIR and renamed into place.
#pragma once

#include <string>

#include "lowbit/model.h"
#include "lowbit/status.h"

namespace lowbit {

class GgufFile;

struct ExportHfAqlmOptions {
  bool force = false;           // replace an existing non-empty OUTDIR
  bool skip_tokenizer = false;  // write no tokenizer files (e.g. a SentencePiece GGUF tokenizer)
};

// Writes `model` (whose linear layers are in the "aqlm" format, all with the same m, b, g) to
// outdir. tokenizer_source: the GGUF file whose tokenizer.ggml.* metadata becomes tokenizer.json
// (null: no tokenizer files). Errors: InvalidArgument (no AQLM linear, mixed AQLM parameters,
// existing non-empty outdir without force), Unimplemented (a tokenizer or model feature the HF
// layout cannot express, named), IoError. Nothing is left behind on failure.
Status ExportHfAqlm(const LlamaModel& model, const GgufFile* tokenizer_source,
                    const std::string& outdir, const ExportHfAqlmOptions& options = {});

// The two tokenizer files for a GGUF byte-level BPE tokenizer (tokenizer.ggml.model "gpt2").
// A SentencePiece ("llama") tokenizer is Unimplemented: lowbit's tokenizer.json reader accepts
// byte-level BPE only.
struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};
Result<HfTokenizerFiles> HfTokenizerFilesFromGguf(const GgufFile& gguf);

}  // namespace lowbit
