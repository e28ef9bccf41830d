// File: engine/tokenizer/normalizer.h
// tokenizer.json normalizers that the supported families use: NFC, Prepend, Replace (string
// or regex), Strip, applied in order (a Sequence is flattened into the list of steps).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/regex.h"

namespace lil {

struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplace, kStrip };
  Kind kind = Kind::kNfc;
  std::string text;                              // kPrepend: prefix; kReplace: literal pattern
  std::string replacement;                       // kReplace
  std::shared_ptr<const Regex> regex;            // kReplace with a Regex pattern
  bool strip_left = false, strip_right = false;  // kStrip
};

class Normalizer {
 public:
  void AddStep(NormalizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  std::string Apply(std::string_view text) const;

 private:
  std::vector<NormalizerStep> steps_;
};

}  // namespace lil
