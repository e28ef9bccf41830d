// File: engine/tokenizer/utf8.h
// UTF-8 helpers for the tokenizer: decoding one code point, encoding, validation and a
// streaming lossy decoder that replaces invalid sequences the way Rust's from_utf8_lossy does
// (one U+FFFD per maximal invalid subpart), which is what HuggingFace tokenizers' decoders do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lil {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string* out);

// Decodes the code point at s[*pos] and advances *pos. Invalid bytes decode as U+FFFD and
// advance by one byte, so callers never loop forever or read past the end.
char32_t NextCodePoint(std::string_view s, size_t* pos);

// Length of the valid UTF-8 sequence starting at s[pos], or 0 when it is not valid.
size_t ValidSequenceLength(std::string_view s, size_t pos);

bool IsValidUtf8(std::string_view s);

// Returns s with every invalid sequence replaced by U+FFFD (from_utf8_lossy semantics).
std::string ToValidUtf8(std::string_view s);

// Streaming form of ToValidUtf8: feed bytes in pieces; complete characters are appended to
// the output as soon as they are known, an incomplete trailing sequence is held back.
class Utf8LossyStream {
 public:
  void Feed(std::string_view bytes, std::string* out);
  void Feed(uint8_t byte, std::string* out);
  // Ends the stream: a held incomplete sequence becomes one U+FFFD.
  void Finish(std::string* out);

 private:
  uint8_t pending_[4] = {0, 0, 0, 0};
  int num_pending_ = 0;
  int needed_ = 0;  // total length of the sequence being collected
};

}  // namespace lil
