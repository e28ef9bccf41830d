// File: engine/tokenizer/pre_tokenizer.h
// Splits normalized text into the words that BPE sees, as the tokenizer.json pre_tokenizer
// does: Split (regex or literal, with HF's split behaviours), ByteLevel (GPT-2 regex and byte
// mapping), Digits, Metaspace. A Sequence is flattened into the list of steps.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/regex.h"

namespace lil {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  Kind kind = Kind::kSplit;
  // kSplit: matches of `regex` (or of the literal `literal` when regex is null).
  std::shared_ptr<const Regex> regex;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel: a GPT-2 regex split (when `regex` is set) then the byte mapping.
  bool add_prefix_space = false;
  // kMetaspace
  std::string replacement = "\xE2\x96\x81";  // "▁"
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};

// One piece of text; `at_origin` is true when it starts at offset 0 of the whole input
// (Metaspace's prepend_scheme "first" depends on it).
struct PreToken {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  void AddStep(PreTokenizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  std::vector<PreToken> Apply(std::string_view text, bool at_origin) const;

 private:
  std::vector<PreTokenizerStep> steps_;
};

// The regex of GPT-2 (and of HF's ByteLevel pre-tokenizer with use_regex).
inline constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace lil
