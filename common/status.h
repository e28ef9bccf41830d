// File: common/status.h
// Status helpers used across module boundaries (absl::Status / absl::StatusOr, no exceptions).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define LIL_CONCAT_INNER_(a, b) a##b
#define LIL_CONCAT_(a, b) LIL_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define LIL_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::absl::Status lil_status_ = (expr);          \
    if (!lil_status_.ok()) return lil_status_;    \
  } while (0)

// `LIL_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a StatusOr or returns its error.
#define LIL_ASSIGN_OR_RETURN(lhs, expr) \
  LIL_ASSIGN_OR_RETURN_IMPL_(LIL_CONCAT_(lil_statusor_, __LINE__), lhs, expr)
#define LIL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

namespace lil {

// Shorthand for the errors that name a field and its value, e.g.
// InvalidArgument("top_p must be in (0, 1], got ", 1.5).
template <typename... Args>
absl::Status InvalidArgument(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}
template <typename... Args>
absl::Status DataLoss(const Args&... args) {
  return absl::DataLossError(absl::StrCat(args...));
}

}  // namespace lil
