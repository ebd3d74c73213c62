// LoadModel / LoadModelWithTokenizer: pick the loader from the path.
#include <filesystem>

#include "lowbit/gguf.h"
#include "lowbit/model.h"
#include "lowbit/tokenizer.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

bool IsGgufPath(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".gguf" || ext == ".GGUF";
}

Result<std::unique_ptr<Tokenizer>> TokenizerFromPath(const std::string& path, int64_t vocab_size) {
  if (fs::path(path).extension() == ".json") return TokenizerFromHfJson(path);
  return TokenizerFromLlama2cFile(path, static_cast<int32_t>(vocab_size));
}

}  // namespace

Result<LlamaModel> LoadModel(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return LoadFromHfFolder(path);
  if (!fs::exists(path, ec)) return NotFound(path + ": no such file or directory");
  if (IsGgufPath(path)) return LoadFromGguf(path);
  return LoadLlama2c(path);
}

Result<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                           const std::string& tokenizer_path) {
  LoadedModel loaded;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(path + ": no such file or directory");
  if (IsGgufPath(path) && !fs::is_directory(path, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile opened, GgufFile::Open(path));
    auto file = std::make_shared<const GgufFile>(std::move(opened));
    LOWBIT_ASSIGN_OR_RETURN(loaded.model, LoadFromGguf(file));
    if (tokenizer_path.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(loaded.tokenizer, TokenizerFromGguf(*file));
    }
  } else {
    LOWBIT_ASSIGN_OR_RETURN(loaded.model, LoadModel(path));
  }
  const int64_t vocab = loaded.model.config.vocab_size;
  if (!tokenizer_path.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(loaded.tokenizer, TokenizerFromPath(tokenizer_path, vocab));
  } else if (loaded.tokenizer == nullptr) {
    std::vector<fs::path> candidates;
    if (fs::is_directory(path, ec)) {
      candidates = {fs::path(path) / "tokenizer.json"};
    } else {
      const fs::path dir = fs::path(path).parent_path();
      candidates = {dir / "tokenizer.bin", dir / ("tok" + std::to_string(vocab) + ".bin")};
    }
    for (const fs::path& candidate : candidates) {
      if (fs::exists(candidate, ec)) {
        LOWBIT_ASSIGN_OR_RETURN(loaded.tokenizer, TokenizerFromPath(candidate.string(), vocab));
        break;
      }
    }
    if (loaded.tokenizer == nullptr) {
      std::string tried;
      for (const fs::path& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
      return NotFound(path + ": no tokenizer found (tried " + tried + "); pass --tokenizer");
    }
  }
  // Embedding tables may be padded past the tokenizer's last id (e.g. Qwen2), never shorter.
  if (loaded.tokenizer->vocab_size() > vocab) {
    return InvalidArgument(path + ": the tokenizer has " +
                           std::to_string(loaded.tokenizer->vocab_size()) +
                           " tokens but the model's embedding has only " + std::to_string(vocab));
  }
  return loaded;
}

}  // namespace lowbit
