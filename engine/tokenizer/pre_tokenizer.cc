// File: engine/tokenizer/pre_tokenizer.cc
// The split behaviours follow HF tokenizers' SplitDelimiterBehavior exactly, because the
// words BPE sees decide the ids.
#include "engine/tokenizer/pre_tokenizer.h"

#include <utility>

#include "engine/tokenizer/byte_level.h"

namespace lil {
namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

std::vector<std::pair<size_t, size_t>> FindLiteral(std::string_view text, std::string_view lit) {
  std::vector<std::pair<size_t, size_t>> out;
  if (lit.empty()) return out;
  size_t pos = 0;
  while ((pos = text.find(lit, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + lit.size());
    pos += lit.size();
  }
  return out;
}

// Matches and the gaps between them, in order, covering the whole text.
std::vector<Span> Partition(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                            bool invert) {
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > last) spans.push_back({last, begin, invert});
    spans.push_back({begin, end, !invert});
    last = end;
  }
  if (last < size) spans.push_back({last, size, invert});
  return spans;
}

std::vector<Span> ApplyBehavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Span>(out.rbegin(), out.rend());
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < spans.size(); ++i) {
        if (i > 0 && spans[i].is_match == previous_match) {
          out.back().end = spans[i].end;
        } else {
          out.push_back(spans[i]);
        }
        previous_match = spans[i].is_match;
      }
      return out;
  }
  return spans;
}

void SplitPiece(const PreToken& piece, const std::vector<std::pair<size_t, size_t>>& matches,
                SplitBehavior behavior, bool invert, std::vector<PreToken>* out) {
  for (const Span& s : ApplyBehavior(Partition(piece.text.size(), matches, invert), behavior)) {
    if (s.end <= s.begin) continue;
    out->push_back({piece.text.substr(s.begin, s.end - s.begin), piece.at_origin && s.begin == 0});
  }
}

void ApplyStep(const PreTokenizerStep& step, PreToken piece, std::vector<PreToken>* out) {
  using Kind = PreTokenizerStep::Kind;
  if (step.kind == Kind::kSplit) {
    SplitPiece(piece,
               step.regex ? step.regex->FindAll(piece.text) : FindLiteral(piece.text, step.literal),
               step.behavior, step.invert, out);
    return;
  }
  if (step.kind == Kind::kByteLevel) {
    if (step.add_prefix_space && (piece.text.empty() || piece.text[0] != ' ')) {
      piece.text.insert(piece.text.begin(), ' ');
    }
    std::vector<PreToken> words;
    if (step.regex) {
      SplitPiece(piece, step.regex->FindAll(piece.text), SplitBehavior::kIsolated, false, &words);
    } else {
      words.push_back(std::move(piece));
    }
    for (PreToken& w : words) out->push_back({ByteLevelEncode(w.text), w.at_origin});
    return;
  }
  // Metaspace: spaces become the replacement, which then starts each word.
  std::string text;
  text.reserve(piece.text.size() + 3);
  for (char c : piece.text) {
    if (c == ' ') {
      text += step.replacement;
    } else {
      text.push_back(c);
    }
  }
  const bool starts_with = text.compare(0, step.replacement.size(), step.replacement) == 0;
  const bool prepend =
      !starts_with && (step.prepend == PreTokenizerStep::Prepend::kAlways ||
                       (step.prepend == PreTokenizerStep::Prepend::kFirst && piece.at_origin));
  if (prepend) text = step.replacement + text;
  PreToken replaced{std::move(text), piece.at_origin};
  if (!step.split) {
    out->push_back(std::move(replaced));
    return;
  }
  SplitPiece(replaced, FindLiteral(replaced.text, step.replacement), SplitBehavior::kMergedWithNext,
             false, out);
}

}  // namespace

std::vector<PreToken> PreTokenizer::Apply(std::string_view text, bool at_origin) const {
  std::vector<PreToken> pieces{{std::string(text), at_origin}};
  for (const PreTokenizerStep& step : steps_) {
    std::vector<PreToken> next;
    next.reserve(pieces.size() * 2);
    for (PreToken& piece : pieces) ApplyStep(step, std::move(piece), &next);
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace lil
