// File: engine/format/string_view_compat.h
// Debian's Abseil 20220623 is built with its own absl::string_view (not an alias of
// std::string_view), so StrCat and heterogeneous hash-map lookups need this bridge.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace lil {

inline absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace lil
