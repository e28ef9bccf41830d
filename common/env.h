// File: common/env.h
// Environment switches: the A/B and opt-in variables the backends read (docs/GPU.md).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace lil {

// Whether $name is set to exactly `value` ("0" turns a measured default off, "1" turns an
// opt-in on).
inline bool EnvIs(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e != nullptr && std::strcmp(e, value) == 0;
}

// $name as a whole number, or `fallback` when it is unset; nullopt when it is set to anything
// that is not a whole number (the caller names the variable and its value in its error).
inline std::optional<int64_t> EnvInt(const char* name, int64_t fallback) {
  const char* e = std::getenv(name);
  if (e == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(e, &end, 10);
  if (end == e || *end != '\0' || errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

}  // namespace lil
