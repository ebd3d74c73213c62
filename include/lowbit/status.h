// Status and Result: how user-reachable failures travel (bad files, bad specs, bad CLI values).
// Broken internal invariants do not use Status: they abort through LOWBIT_CHECK.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace lowbit {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad spec string, bad CLI value, bad shape
  kNotFound,         // missing file, tensor or key
  kDataLoss,         // malformed or truncated file
  kIoError,          // read/write/rename failed
  kUnimplemented,    // e.g. quantizing into a decode-only format
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }

// Either a value or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);

}  // namespace lowbit

// Always-on invariant check (also in Release): a failure is a bug in lowbit, not bad input.
#define LOWBIT_CHECK(cond) \
  ((cond) ? (void)0 : ::lowbit::CheckFailed(__FILE__, __LINE__, #cond))

#define LOWBIT_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::lowbit::Status lowbit_status_ = (expr); \
    if (!lowbit_status_.ok()) return lowbit_status_; \
  } while (0)

#define LOWBIT_CONCAT_INNER_(a, b) a##b
#define LOWBIT_CONCAT_(a, b) LOWBIT_CONCAT_INNER_(a, b)
#define LOWBIT_ASSIGN_OR_RETURN(lhs, expr)                              \
  auto LOWBIT_CONCAT_(lowbit_result_, __LINE__) = (expr);               \
  if (!LOWBIT_CONCAT_(lowbit_result_, __LINE__).ok())                   \
    return LOWBIT_CONCAT_(lowbit_result_, __LINE__).status();           \
  lhs = std::move(LOWBIT_CONCAT_(lowbit_result_, __LINE__)).value()
