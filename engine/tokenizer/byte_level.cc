// File: engine/tokenizer/byte_level.cc
// The byte-level table: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 onwards in byte order (GPT-2's bytes_to_unicode).
#include "engine/tokenizer/byte_level.h"

#include <array>

#include "engine/tokenizer/utf8.h"

namespace lil {
namespace {

struct ByteTables {
  std::array<std::string, 256> to_text;
  std::array<int16_t, 324> to_byte;  // code point (< 324) -> byte, or -1
  ByteTables() {
    to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t cp = printable ? b : next++;
      AppendUtf8(cp, &to_text[b]);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* tables = new ByteTables();
  return *tables;
}

}  // namespace

const std::string& ByteToUnicode(uint8_t byte) { return Tables().to_text[byte]; }

std::string ByteLevelEncode(std::string_view text) {
  const ByteTables& t = Tables();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += t.to_text[static_cast<uint8_t>(c)];
  return out;
}

std::optional<uint8_t> UnicodeToByte(char32_t cp) {
  if (cp >= 324) return std::nullopt;
  const int16_t b = Tables().to_byte[cp];
  if (b < 0) return std::nullopt;
  return static_cast<uint8_t>(b);
}

}  // namespace lil
