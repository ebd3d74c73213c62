#include "io/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace lowbit::io {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

constexpr size_t kWriteBufferBytes = 1 << 20;

}  // namespace

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Result<std::shared_ptr<const MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + ErrnoText());
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string err = ErrnoText();
    ::close(fd);
    return IoError(path + ": cannot stat: " + err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string err = ErrnoText();
      ::close(fd);
      return IoError(path + ": cannot map " + std::to_string(file->size_) + " bytes: " + err);
    }
    file->mapping_ = p;
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const MappedFile>(std::move(file));
}

MappedFile::~MappedFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, static_cast<size_t>(size_));
}

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(const std::string& path) {
  std::unique_ptr<AtomicFileWriter> w(new AtomicFileWriter());
  w->path_ = path;
  w->buffer_.reserve(kWriteBufferBytes);
  // Preferred: an unnamed file in the target folder (O_TMPFILE). Until Commit links it, it has no
  // name at all, so even SIGKILL leaves nothing behind. Filesystems without O_TMPFILE fall back to
  // a named temporary file that is unlinked on failure (but survives a SIGKILL).
#ifdef O_TMPFILE
  const int anon_fd = ::open(DirName(path).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (anon_fd >= 0) {
    w->fd_ = anon_fd;
    w->anonymous_ = true;
    return w;
  }
#endif
  std::string templ = path + ".tmp.XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0) return IoError(path + ": cannot create a temporary file next to it: " + ErrnoText());
  w->fd_ = fd;
  w->temp_path_ = buf.data();
  // mkstemp creates 0600; model files are ordinary data files (0644 before the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  return w;
}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    if (!anonymous_) ::unlink(temp_path_.c_str());  // an unnamed file vanishes with its fd
  }
}

Status AtomicFileWriter::Flush() {
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const Status st = IoError(path_ + ": write failed: " + ErrnoText());
      Abandon();
      return st;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffer_.clear();
  return Status::Ok();
}

Status AtomicFileWriter::Write(const void* data, uint64_t n) {
  if (fd_ < 0) return IoError(path_ + ": write after failure or commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const uint64_t room = kWriteBufferBytes - buffer_.size();
    const uint64_t take = n < room ? n : room;
    buffer_.append(p, static_cast<size_t>(take));
    p += take;
    n -= take;
    written_ += take;
    if (buffer_.size() == kWriteBufferBytes) LOWBIT_RETURN_IF_ERROR(Flush());
  }
  return Status::Ok();
}

Status AtomicFileWriter::WriteZeros(uint64_t n) {
  static const char kZeros[4096] = {};
  while (n > 0) {
    const uint64_t take = n < sizeof(kZeros) ? n : sizeof(kZeros);
    LOWBIT_RETURN_IF_ERROR(Write(kZeros, take));
    n -= take;
  }
  return Status::Ok();
}

Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return IoError(path_ + ": commit after failure or commit");
  LOWBIT_RETURN_IF_ERROR(Flush());
  if (::fsync(fd_) != 0) {
    const Status st = IoError(path_ + ": fsync failed: " + ErrnoText());
    Abandon();
    return st;
  }
  if (anonymous_) {
    // Give the unnamed file a temporary name (linkat cannot replace an existing file), then
    // rename it over the target as usual.
    const std::string proc_path = "/proc/self/fd/" + std::to_string(fd_);
    for (int attempt = 0;; ++attempt) {
      temp_path_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(attempt);
      if (::linkat(AT_FDCWD, proc_path.c_str(), AT_FDCWD, temp_path_.c_str(),
                   AT_SYMLINK_FOLLOW) == 0) {
        break;
      }
      if (errno != EEXIST || attempt >= 100) {
        const Status st = IoError(path_ + ": cannot link the temporary file: " + ErrnoText());
        Abandon();
        return st;
      }
    }
    anonymous_ = false;  // from here on the temporary file has a name to clean up
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    const Status st = IoError(path_ + ": close failed: " + ErrnoText());
    ::unlink(temp_path_.c_str());
    return st;
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const Status st =
        IoError(path_ + ": cannot rename the temporary file into place: " + ErrnoText());
    ::unlink(temp_path_.c_str());
    return st;
  }
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  const int dir_fd = ::open(DirName(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

}  // namespace lowbit::io
