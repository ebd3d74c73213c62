// File plumbing shared by the model readers and writers: read-only memory maps and atomic writes
// (temporary file in the target folder, fsync, rename; nothing left behind on failure).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lowbit/status.h"

namespace lowbit::io {

// A whole file mapped read-only. An empty file maps to (nullptr, 0).
class MappedFile {
 public:
  static Result<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;
};

// Writes to an unnamed O_TMPFILE file in the target folder (or "<path>.tmp.XXXXXX" where the
// filesystem lacks O_TMPFILE); Commit() fsyncs, names it, renames it over path and fsyncs the
// folder. Destroying an uncommitted writer removes the temporary file; with O_TMPFILE even a
// killed process leaves nothing.
class AtomicFileWriter {
 public:
  static Result<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Status Write(const void* data, uint64_t n);
  Status WriteZeros(uint64_t n);
  Status Commit();
  uint64_t bytes_written() const { return written_; }

 private:
  AtomicFileWriter() = default;
  Status Flush();
  void Abandon();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool anonymous_ = false;  // fd_ is an O_TMPFILE file with no name yet
  uint64_t written_ = 0;
  std::string buffer_;  // coalesces small writes (metadata) into large write() calls
};

// Rounds x up to a multiple of alignment (a power of two); false on overflow.
inline bool AlignUp(uint64_t x, uint64_t alignment, uint64_t* out) {
  const uint64_t mask = alignment - 1;
  if (x > UINT64_MAX - mask) return false;
  *out = (x + mask) & ~mask;
  return true;
}

// Folder part of a path ("." when there is none).
std::string DirName(const std::string& path);

}  // namespace lowbit::io
