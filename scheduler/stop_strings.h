// File: scheduler/stop_strings.h
// Stop strings matched on the detokenized output across token boundaries. Text that could
// still be the start of a stop string is held back; a match ends the output before it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lil {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string emit;   // text now safe to stream
    bool matched = false;
    std::string match;  // the stop string that matched (earliest in the text)
  };

  // Appends a text delta. When `may_match` is false (min_tokens not reached) no match is
  // reported, but text is still held back while it could begin a stop string.
  Result Append(std::string_view delta, bool may_match);
  // The held-back text, released when the request ends for another reason.
  std::string Flush();

  // All output text so far (empty when there are no stop strings: nothing is kept then).
  const std::string& text() const { return text_; }

 private:
  size_t HoldBack() const;

  std::vector<std::string> stops_;
  std::string text_;        // all output text so far
  size_t emitted_ = 0;      // bytes of text_ already returned
  size_t checked_end_ = 0;  // matches ending at or before this offset were ruled out
};

}  // namespace lil
