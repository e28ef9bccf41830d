// File: engine/tokenizer/string_view_compat.h
// Debian's Abseil is built with its own absl::string_view (not std::string_view), so
// heterogeneous flat_hash_map lookups and StrCat need an explicit bridge.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace lil {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace lil
