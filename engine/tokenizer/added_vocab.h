// File: engine/tokenizer/added_vocab.h
// Added tokens (tokenizer.json "added_tokens", GGUF control/user-defined tokens): found in the
// input before the model runs, leftmost-longest, with HF's lstrip/rstrip/single_word rules.
// Tokens with normalized=false match the raw text; normalized=true ones the normalized text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"

namespace lil {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false, rstrip = false, single_word = false;
};

// A piece of input: plain text for the model, or one added token.
struct Segment {
  size_t begin = 0, end = 0;  // byte range in the text that was split
  int32_t token = -1;         // added token id, or -1 for plain text
};

// Leftmost-longest matcher over a fixed set of token strings (a byte trie).
class AddedTokenMatcher {
 public:
  void Add(const AddedToken& token, std::string pattern);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` into plain and token segments, applying each token's strip rules.
  std::vector<Segment> Split(std::string_view text) const;

 private:
  struct Node {
    int32_t token_index = -1;  // index into tokens_ when a pattern ends here
  };
  int32_t Child(int32_t node, uint8_t byte) const;
  // Longest pattern starting at `pos`: (token index, length) or (-1, 0).
  std::pair<int32_t, size_t> LongestAt(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_{Node{}};
  // Children of each node as (byte, node) pairs: few per node, so a linear scan is fastest.
  std::vector<std::vector<std::pair<uint8_t, int32_t>>> children_{{}};
  bool first_byte_[256] = {};
};

}  // namespace lil
