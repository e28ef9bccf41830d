// File: engine/tokenizer/regex.h
// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the pre-tokenizer's Split
// steps. HF tokenizer.json regexes need \p{L}, \p{N} and lookahead, which PCRE2 handles.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lil {

class Regex {
 public:
  // `where` names the pattern's origin for error messages (e.g. "pre_tokenizer.pretokenizers[0]").
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern,
                                                        const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-empty, non-overlapping matches [begin, end) in `text` (valid UTF-8), left to right.
  // Thread-safe. If the matcher fails (resource limits), matching stops there: the rest of
  // the text is then treated as unmatched rather than failing the whole encode.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace lil
