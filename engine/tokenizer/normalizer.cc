// File: engine/tokenizer/normalizer.cc
// Applies the normalizer steps to one segment of input text (between added tokens).
#include "engine/tokenizer/normalizer.h"

#include "engine/tokenizer/nfc.h"
#include "engine/tokenizer/utf8.h"

namespace lil {
namespace {

std::string ReplaceLiteral(std::string_view text, std::string_view pattern,
                           std::string_view replacement) {
  if (pattern.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(pattern, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + pattern.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string ReplaceRegex(std::string_view text, const Regex& regex, std::string_view replacement) {
  std::string out;
  size_t pos = 0;
  for (const auto& [begin, end] : regex.FindAll(text)) {
    out.append(text.substr(pos, begin - pos));
    out.append(replacement);
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

bool IsUnicodeSpace(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string Strip(std::string_view text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end) {
      size_t next = begin;
      if (!IsUnicodeSpace(NextCodePoint(text, &next))) break;
      begin = next;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
      size_t probe = start;
      if (!IsUnicodeSpace(NextCodePoint(text, &probe))) break;
      end = start;
    }
  }
  return std::string(text.substr(begin, end - begin));
}

}  // namespace

std::string Normalizer::Apply(std::string_view text) const {
  std::string current(text);
  for (const NormalizerStep& step : steps_) {
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc:
        if (!IsNfcQuick(current)) current = ToNfc(current);
        break;
      case NormalizerStep::Kind::kPrepend:
        // HF prepends only to non-empty text.
        if (!current.empty()) current = step.text + current;
        break;
      case NormalizerStep::Kind::kReplace:
        current = step.regex ? ReplaceRegex(current, *step.regex, step.replacement)
                             : ReplaceLiteral(current, step.text, step.replacement);
        break;
      case NormalizerStep::Kind::kStrip:
        current = Strip(current, step.strip_left, step.strip_right);
        break;
    }
  }
  return current;
}

}  // namespace lil
