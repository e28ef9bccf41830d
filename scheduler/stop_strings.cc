// File: scheduler/stop_strings.cc
#include "scheduler/stop_strings.h"

#include <algorithm>

namespace lil {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  // Empty stop strings would match everywhere; they are rejected at AddRequest, and
  // ignored here so the matcher is safe on any input.
  stops_.erase(std::remove_if(stops_.begin(), stops_.end(),
                              [](const std::string& s) { return s.empty(); }),
               stops_.end());
}

StopStringMatcher::Result StopStringMatcher::Append(std::string_view delta, bool may_match) {
  Result r;
  if (stops_.empty()) {  // nothing to match: stream as is, keep no copy
    r.emit.assign(delta);
    return r;
  }
  const size_t old_size = text_.size();
  text_.append(delta);
  // Matches ending at or before checked_end_ were ruled out (or ignored before
  // min_tokens), so each stop string is searched from where a new match could start.
  const size_t from_end = std::min(checked_end_, old_size);
  checked_end_ = text_.size();
  if (may_match) {
    size_t best = std::string::npos;
    const std::string* best_stop = nullptr;
    for (const auto& s : stops_) {
      const size_t start = from_end >= s.size() ? from_end - s.size() + 1 : 0;
      const size_t pos = text_.find(s, start);
      if (pos != std::string::npos && pos < best) {
        best = pos;
        best_stop = &s;
      }
    }
    if (best_stop != nullptr) {
      r.matched = true;
      r.match = *best_stop;
      if (best > emitted_) r.emit = text_.substr(emitted_, best - emitted_);
      emitted_ = text_.size();  // nothing after the match is ever sent
      return r;
    }
  }
  const size_t safe_end = text_.size() - HoldBack();
  if (safe_end > emitted_) {
    r.emit = text_.substr(emitted_, safe_end - emitted_);
    emitted_ = safe_end;
  }
  return r;
}

std::string StopStringMatcher::Flush() {
  std::string rest = text_.substr(std::min(emitted_, text_.size()));
  emitted_ = text_.size();
  return rest;
}

size_t StopStringMatcher::HoldBack() const {
  // The longest suffix of the text that is a proper prefix of some stop string.
  size_t hold = 0;
  const size_t n = text_.size();
  for (const auto& s : stops_) {
    const size_t max_k = std::min(s.size() - 1, n);
    for (size_t k = max_k; k > hold; --k) {
      if (text_.compare(n - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace lil
