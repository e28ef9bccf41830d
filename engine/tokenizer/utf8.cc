// File: engine/tokenizer/utf8.cc
// UTF-8 decoding, validation and the from_utf8_lossy-compatible streaming decoder.
#include "engine/tokenizer/utf8.h"

namespace lil {
namespace {

// Number of bytes of a sequence led by `b`, or 0 for a byte that cannot lead one.
int SequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the byte at index `index` (>= 1) of a sequence. The
// second byte's range depends on the lead (no overlongs, surrogates or > U+10FFFF).
bool ValidContinuation(uint8_t lead, int index, uint8_t b) {
  if (index == 1) {
    switch (lead) {
      case 0xE0:
        return b >= 0xA0 && b <= 0xBF;
      case 0xED:
        return b >= 0x80 && b <= 0x9F;
      case 0xF0:
        return b >= 0x90 && b <= 0xBF;
      case 0xF4:
        return b >= 0x80 && b <= 0x8F;
      default:
        break;
    }
  }
  return b >= 0x80 && b <= 0xBF;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t ValidSequenceLength(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  const uint8_t lead = static_cast<uint8_t>(s[pos]);
  const int n = SequenceLength(lead);
  if (n == 0 || pos + n > s.size()) return 0;
  for (int i = 1; i < n; ++i) {
    if (!ValidContinuation(lead, i, static_cast<uint8_t>(s[pos + i]))) return 0;
  }
  return n;
}

char32_t NextCodePoint(std::string_view s, size_t* pos) {
  const size_t n = ValidSequenceLength(s, *pos);
  if (n == 0) {
    ++*pos;
    return 0xFFFD;
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(s.data()) + *pos;
  *pos += n;
  switch (n) {
    case 1:
      return p[0];
    case 2:
      return ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3:
      return ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
      return ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

bool IsValidUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = ValidSequenceLength(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  Utf8LossyStream stream;
  stream.Feed(s, &out);
  stream.Finish(&out);
  return out;
}

void Utf8LossyStream::Feed(std::string_view bytes, std::string* out) {
  for (char c : bytes) Feed(static_cast<uint8_t>(c), out);
}

void Utf8LossyStream::Feed(uint8_t byte, std::string* out) {
  if (num_pending_ > 0) {
    if (ValidContinuation(pending_[0], num_pending_, byte)) {
      pending_[num_pending_++] = byte;
      if (num_pending_ == needed_) {
        out->append(reinterpret_cast<const char*>(pending_), num_pending_);
        num_pending_ = 0;
      }
      return;
    }
    // The held prefix is a maximal invalid subpart; the current byte starts afresh.
    out->append(kReplacementChar);
    num_pending_ = 0;
  }
  const int n = SequenceLength(byte);
  if (n == 1) {
    out->push_back(static_cast<char>(byte));
  } else if (n == 0) {
    out->append(kReplacementChar);
  } else {
    pending_[0] = byte;
    num_pending_ = 1;
    needed_ = n;
  }
}

void Utf8LossyStream::Finish(std::string* out) {
  if (num_pending_ > 0) out->append(kReplacementChar);
  num_pending_ = 0;
}

}  // namespace lil
