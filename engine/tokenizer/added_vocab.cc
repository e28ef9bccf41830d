// File: engine/tokenizer/added_vocab.cc
// Matching of added tokens, following HF AddedVocabulary::find_matches.
#include "engine/tokenizer/added_vocab.h"

#include "engine/tokenizer/utf8.h"

namespace lil {
namespace {

bool IsWhitespace(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Approximates Rust's char::is_alphanumeric() || '_' well enough for single_word: ASCII word
// characters and every non-ASCII non-space character (letters in all scripts).
bool IsWordChar(char32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return !IsWhitespace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F);
}

// Start of the UTF-8 character that ends just before `pos`.
size_t PrevCharStart(std::string_view s, size_t pos) {
  size_t p = pos - 1;
  while (p > 0 && (static_cast<uint8_t>(s[p]) & 0xC0) == 0x80) --p;
  return p;
}

}  // namespace

void AddedTokenMatcher::Add(const AddedToken& token, std::string pattern) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char c : pattern) {
    const uint8_t b = static_cast<uint8_t>(c);
    int32_t next = Child(node, b);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.push_back(Node{});
      children_.emplace_back();
      children_[node].emplace_back(b, next);
    }
    node = next;
  }
  if (nodes_[node].token_index >= 0) return;  // first registration wins
  nodes_[node].token_index = static_cast<int32_t>(tokens_.size());
  tokens_.push_back(token);
  first_byte_[static_cast<uint8_t>(pattern[0])] = true;
}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  for (const auto& [b, to] : children_[node]) {
    if (b == byte) return to;
  }
  return -1;
}

std::pair<int32_t, size_t> AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token_index >= 0) best = {nodes_[node].token_index, i + 1 - pos};
  }
  return best;
}

std::vector<Segment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t plain_begin = 0;  // end of the previous token match
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    auto [index, length] = LongestAt(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos, stop = pos + length;
    if (token.single_word) {
      size_t p = 0;
      const bool word_before = start > 0 && [&] {
        p = PrevCharStart(text, start);
        return IsWordChar(NextCodePoint(text, &p));
      }();
      p = stop;
      const bool word_after = stop < text.size() && IsWordChar(NextCodePoint(text, &p));
      if (word_before || word_after) {
        ++pos;
        continue;
      }
    }
    if (token.lstrip) {
      while (start > plain_begin) {
        const size_t prev = PrevCharStart(text, start);
        size_t p = prev;
        if (!IsWhitespace(NextCodePoint(text, &p))) break;
        start = prev;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t p = stop;
        if (!IsWhitespace(NextCodePoint(text, &p))) break;
        stop = p;
      }
    }
    if (start > plain_begin) segments.push_back({plain_begin, start, -1});
    segments.push_back({start, stop, token.id});
    plain_begin = stop;
    pos = stop;
  }
  if (plain_begin < text.size()) segments.push_back({plain_begin, text.size(), -1});
  return segments;
}

}  // namespace lil
