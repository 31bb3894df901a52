// Result<T>: a value or a positive errno, the engine's way of reporting errors.
//
// Shaped like C++23's std::expected<T, int>: engine calls never throw across their
// API, they return a [[nodiscard]] Result. An error is a positive errno value
// (EIO, ENOSPC, ...) so it can travel unchanged to fuse_reply_err.
#pragma once

#include <cassert>
#include <cerrno>
#include <optional>
#include <type_traits>
#include <utility>

namespace pagefs {

// Tag type for constructing an error Result: `return Err{ENOENT};`.
struct Err {
  int code;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)), error_(0) {}  // NOLINT: implicit by design
  Result(Err e) : error_(e.code) { assert(e.code > 0); }    // NOLINT

  bool ok() const { return error_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return error_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::optional<T> value_;
  int error_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() : error_(0) {}
  Result(Err e) : error_(e.code) { assert(e.code > 0); }  // NOLINT

  bool ok() const { return error_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return error_; }

 private:
  int error_;
};

using Status = Result<void>;

inline Status ok_status() {
  return Status();
}

}  // namespace pagefs

// Propagates an error from an expression returning a Result/Status.
#define PAGEFS_TRY(expr)                                                            \
  do {                                                                              \
    auto pagefs_try_result_ = (expr);                                               \
    if (!pagefs_try_result_.ok()) return ::pagefs::Err{pagefs_try_result_.error()}; \
  } while (0)

#define PAGEFS_CONCAT_INNER(a, b) a##b
#define PAGEFS_CONCAT(a, b) PAGEFS_CONCAT_INNER(a, b)

// `PAGEFS_ASSIGN(auto x, expr);` binds x to the value or returns the error.
#define PAGEFS_ASSIGN(decl, expr) PAGEFS_ASSIGN_IMPL(PAGEFS_CONCAT(pagefs_r_, __LINE__), decl, expr)
#define PAGEFS_ASSIGN_IMPL(tmp, decl, expr)         \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return ::pagefs::Err{tmp.error()}; \
  decl = std::move(tmp).value()
