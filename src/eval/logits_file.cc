// Reference logits file (layout in lowbit/eval.h and docs/eval.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "formats/minifloat_codec.h"
#include "io/file_io.h"
#include "lowbit/eval.h"

namespace lowbit {
namespace {

constexpr char kMagic[8] = {'L', 'B', 'L', 'O', 'G', 'I', 'T', '1'};
constexpr uint64_t kHeaderBytes = 8 + 5 * 8 + 2 * 4;
// Sanity limits that keep every size computation far from overflow.
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxCtx = int64_t{1} << 24;
constexpr int64_t kMaxChunks = int64_t{1} << 24;

void PutI64(std::vector<uint8_t>& b, int64_t v) {
  const size_t at = b.size();
  b.resize(at + 8);
  std::memcpy(&b[at], &v, 8);
}
void PutI32(std::vector<uint8_t>& b, int32_t v) {
  const size_t at = b.size();
  b.resize(at + 4);
  std::memcpy(&b[at], &v, 4);
}

}  // namespace

int64_t LogitsFileHeader::RecordBytes() const { return 8 + (top_k == 0 ? 2 * n_vocab : 8 * top_k); }

struct LogitsFileWriter::Impl {
  LogitsFileHeader header;
  std::unique_ptr<io::AtomicFileWriter> file;
  int64_t records_written = 0;
  std::vector<uint8_t> record;
  std::vector<int32_t> order;  // scratch for top-k selection
};

LogitsFileWriter::LogitsFileWriter() : impl_(std::make_unique<Impl>()) {}
LogitsFileWriter::~LogitsFileWriter() = default;

Result<std::unique_ptr<LogitsFileWriter>> LogitsFileWriter::Create(
    const std::string& path, const LogitsFileHeader& header, std::span<const int32_t> tokens) {
  if (header.n_vocab <= 0 || header.n_vocab > kMaxVocab || header.ctx < 2 || header.ctx > kMaxCtx ||
      header.n_chunks <= 0 || header.n_chunks > kMaxChunks || header.first_scored < 0 ||
      header.first_scored > header.ctx - 2 || header.top_k < 0 || header.top_k > header.n_vocab) {
    return InvalidArgument(path + ": bad logits file header (vocab " +
                           std::to_string(header.n_vocab) + ", ctx " + std::to_string(header.ctx) +
                           ", chunks " + std::to_string(header.n_chunks) + ", top_k " +
                           std::to_string(header.top_k) + ")");
  }
  if (static_cast<int64_t>(tokens.size()) != header.n_chunks * header.ctx) {
    return InvalidArgument(
        path + ": " + std::to_string(tokens.size()) +
        " tokens given for n_chunks * ctx = " + std::to_string(header.n_chunks * header.ctx));
  }
  std::unique_ptr<LogitsFileWriter> writer(new LogitsFileWriter());
  Impl& w = *writer->impl_;
  w.header = header;
  LOWBIT_ASSIGN_OR_RETURN(w.file, io::AtomicFileWriter::Create(path));
  std::vector<uint8_t> head(kMagic, kMagic + 8);
  PutI64(head, header.n_vocab);
  PutI64(head, header.ctx);
  PutI64(head, header.n_chunks);
  PutI64(head, header.first_scored);
  PutI64(head, header.top_k);
  PutI32(head, header.bos_replaced ? 1 : 0);
  PutI32(head, header.bos);
  LOWBIT_CHECK(head.size() == kHeaderBytes);
  LOWBIT_RETURN_IF_ERROR(w.file->Write(head.data(), head.size()));
  LOWBIT_RETURN_IF_ERROR(w.file->Write(tokens.data(), 4 * tokens.size()));
  w.record.resize(static_cast<size_t>(header.RecordBytes()));
  return writer;
}

Status LogitsFileWriter::Append(const float* logprobs, int32_t target) {
  Impl& w = *impl_;
  const LogitsFileHeader& h = w.header;
  LOWBIT_CHECK(w.records_written < h.n_chunks * h.scored_per_chunk());
  LOWBIT_CHECK(target >= 0 && target < h.n_vocab);
  const int64_t n = h.n_vocab;
  int32_t argmax = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (logprobs[i] > logprobs[argmax]) argmax = static_cast<int32_t>(i);
  }
  uint8_t* out = w.record.data();
  std::memcpy(out, &logprobs[target], 4);
  std::memcpy(out + 4, &argmax, 4);
  out += 8;
  if (h.top_k == 0) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t half = FloatToHalf(logprobs[i]);
      std::memcpy(out + 2 * i, &half, 2);
    }
  } else {
    w.order.resize(static_cast<size_t>(n));
    std::iota(w.order.begin(), w.order.end(), 0);
    std::partial_sort(w.order.begin(), w.order.begin() + h.top_k, w.order.end(),
                      [&](int32_t a, int32_t b) {
                        return logprobs[a] != logprobs[b] ? logprobs[a] > logprobs[b] : a < b;
                      });
    for (int64_t i = 0; i < h.top_k; ++i) {
      const int32_t id = w.order[static_cast<size_t>(i)];
      std::memcpy(out + 8 * i, &id, 4);
      std::memcpy(out + 8 * i + 4, &logprobs[id], 4);
    }
  }
  LOWBIT_RETURN_IF_ERROR(w.file->Write(w.record.data(), w.record.size()));
  ++w.records_written;
  return Status::Ok();
}

Status LogitsFileWriter::Commit() {
  Impl& w = *impl_;
  const int64_t expected = w.header.n_chunks * w.header.scored_per_chunk();
  if (w.records_written != expected) {
    return InvalidArgument("logits file: " + std::to_string(w.records_written) +
                           " records written, expected " + std::to_string(expected));
  }
  return w.file->Commit();
}

struct LogitsFileReader::Impl {
  std::string path;
  std::shared_ptr<const io::MappedFile> file;
  LogitsFileHeader header;
  std::vector<int32_t> tokens;
  const uint8_t* records = nullptr;
};

LogitsFileReader::LogitsFileReader() : impl_(std::make_unique<Impl>()) {}
LogitsFileReader::~LogitsFileReader() = default;
const LogitsFileHeader& LogitsFileReader::header() const { return impl_->header; }
std::span<const int32_t> LogitsFileReader::tokens() const { return impl_->tokens; }

Result<std::unique_ptr<LogitsFileReader>> LogitsFileReader::Open(const std::string& path) {
  std::unique_ptr<LogitsFileReader> reader(new LogitsFileReader());
  Impl& r = *reader->impl_;
  r.path = path;
  LOWBIT_ASSIGN_OR_RETURN(r.file, io::MappedFile::Open(path));
  const uint8_t* p = r.file->data();
  const uint64_t size = r.file->size();
  if (size < kHeaderBytes || std::memcmp(p, kMagic, 8) != 0) {
    return DataLoss(path + ": not a lowbit logits file (magic 'LBLOGIT1' missing)");
  }
  LogitsFileHeader& h = r.header;
  int64_t v[5];
  std::memcpy(v, p + 8, sizeof(v));
  int32_t flags[2];
  std::memcpy(flags, p + 48, sizeof(flags));
  h.n_vocab = v[0];
  h.ctx = v[1];
  h.n_chunks = v[2];
  h.first_scored = v[3];
  h.top_k = v[4];
  h.bos_replaced = flags[0] != 0;
  h.bos = flags[1];
  auto bad = [&](const char* field, int64_t value) {
    return DataLoss(path + ": header field " + field + " = " + std::to_string(value) +
                    " is out of range");
  };
  if (h.n_vocab <= 0 || h.n_vocab > kMaxVocab) return bad("n_vocab", h.n_vocab);
  if (h.ctx < 2 || h.ctx > kMaxCtx) return bad("ctx", h.ctx);
  if (h.n_chunks <= 0 || h.n_chunks > kMaxChunks) return bad("n_chunks", h.n_chunks);
  if (h.first_scored < 0 || h.first_scored > h.ctx - 2) return bad("first_scored", h.first_scored);
  if (h.top_k < 0 || h.top_k > h.n_vocab) return bad("top_k", h.top_k);
  const uint64_t n_tokens = static_cast<uint64_t>(h.n_chunks * h.ctx);
  const uint64_t n_records = static_cast<uint64_t>(h.n_chunks * h.scored_per_chunk());
  // Each factor is < 2^25 and RecordBytes < 2^28, so these products fit comfortably in 64 bits.
  const uint64_t expected = kHeaderBytes + 4 * n_tokens + n_records * h.RecordBytes();
  if (size != expected) {
    return DataLoss(path + ": " + std::to_string(size) + " bytes, but its header implies " +
                    std::to_string(expected) + " (truncated or not a logits file)");
  }
  r.tokens.resize(n_tokens);
  std::memcpy(r.tokens.data(), p + kHeaderBytes, 4 * n_tokens);
  for (uint64_t i = 0; i < n_tokens; ++i) {
    if (r.tokens[i] < 0 || r.tokens[i] >= h.n_vocab) {
      return DataLoss(path + ": token " + std::to_string(i) + " = " + std::to_string(r.tokens[i]) +
                      " outside the vocabulary");
    }
  }
  r.records = p + kHeaderBytes + 4 * n_tokens;
  if (h.top_k > 0) {  // ids index Q's log-probs: check them all once here
    for (uint64_t rec = 0; rec < n_records; ++rec) {
      const uint8_t* q = r.records + rec * h.RecordBytes() + 8;
      for (int64_t i = 0; i < h.top_k; ++i) {
        int32_t id;
        std::memcpy(&id, q + 8 * i, 4);
        if (id < 0 || id >= h.n_vocab) {
          return DataLoss(path + ": record " + std::to_string(rec) + " top-k id " +
                          std::to_string(id) + " outside the vocabulary");
        }
      }
    }
  }
  return reader;
}

void LogitsFileReader::Read(int64_t chunk, int64_t index, Record* record) const {
  const Impl& r = *impl_;
  const LogitsFileHeader& h = r.header;
  LOWBIT_CHECK(chunk >= 0 && chunk < h.n_chunks && index >= 0 && index < h.scored_per_chunk());
  const uint8_t* p = r.records + (chunk * h.scored_per_chunk() + index) * h.RecordBytes();
  std::memcpy(&record->target_logprob, p, 4);
  std::memcpy(&record->argmax, p + 4, 4);
  p += 8;
  if (h.top_k == 0) {
    // fp16 rounding leaves the probabilities summing to 1 +- ~1e-3: renormalise in double so
    // KL(P || Q) is the divergence of a proper distribution (and never negative).
    record->ids.clear();
    record->logprobs.resize(static_cast<size_t>(h.n_vocab));
    for (int64_t i = 0; i < h.n_vocab; ++i) {
      uint16_t half;
      std::memcpy(&half, p + 2 * i, 2);
      record->logprobs[static_cast<size_t>(i)] = HalfToFloat(half);
    }
    std::vector<float> normalised(record->logprobs.size());
    LogSoftmax(record->logprobs.data(), h.n_vocab, normalised.data());
    record->logprobs.swap(normalised);
  } else {
    record->ids.resize(static_cast<size_t>(h.top_k));
    record->logprobs.resize(static_cast<size_t>(h.top_k));
    for (int64_t i = 0; i < h.top_k; ++i) {
      std::memcpy(&record->ids[static_cast<size_t>(i)], p + 8 * i, 4);
      std::memcpy(&record->logprobs[static_cast<size_t>(i)], p + 8 * i + 4, 4);
    }
  }
}

}  // namespace lowbit
