// File: common/env.h
// Environment switches: the A/B and opt-in variables the backends read (docs/GPU.md).
#pragma once

#include <cstdlib>
#include <cstring>

namespace lil {

// Whether $name is set to exactly `value` ("0" turns a measured default off, "1" turns an
// opt-in on).
inline bool EnvIs(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e != nullptr && std::strcmp(e, value) == 0;
}

}  // namespace lil
