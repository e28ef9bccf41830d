// File: engine/tokenizer/nfc.cc
// NFC over the generated tables (nfc_data.h), with algorithmic Hangul (de)composition.
#include "engine/tokenizer/nfc.h"

#include <algorithm>
#include <vector>

#include "engine/tokenizer/nfc_data.h"
#include "engine/tokenizer/utf8.h"

namespace lil {
namespace {

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr int kSCount = kLCount * kNCount;

uint8_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = nfc_data::kCcc + nfc_data::kCccSize;
  const auto* it = std::lower_bound(
      nfc_data::kCcc, end, cp, [](const nfc_data::CccEntry& e, char32_t c) { return e.cp < c; });
  return (it != end && it->cp == cp) ? it->ccc : 0;
}

const nfc_data::DecompEntry* FindDecomposition(char32_t cp) {
  if (cp < 0xC0) return nullptr;
  const auto* end = nfc_data::kDecomp + nfc_data::kDecompSize;
  const auto* it =
      std::lower_bound(nfc_data::kDecomp, end, cp,
                       [](const nfc_data::DecompEntry& e, char32_t c) { return e.cp < c; });
  return (it != end && it->cp == cp) ? it : nullptr;
}

bool IsCompositionSecond(char32_t cp) {
  const auto* end = nfc_data::kCompSecond + nfc_data::kCompSecondSize;
  return std::binary_search(nfc_data::kCompSecond, end, cp);
}

bool IsHangulJamoVowelOrTrail(char32_t cp) {
  return (cp >= kVBase && cp < kVBase + kVCount) || (cp > kTBase && cp < kTBase + kTCount);
}

// Returns the primary composite of (a, b), or 0 when there is none.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto* end = nfc_data::kComp + nfc_data::kCompSize;
  const auto* it =
      std::lower_bound(nfc_data::kComp, end, std::make_pair(a, b),
                       [](const nfc_data::CompEntry& e, std::pair<char32_t, char32_t> k) {
                         return e.first != k.first ? e.first < k.first : e.second < k.second;
                       });
  return (it != end && it->first == a && it->second == b) ? it->composite : 0;
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const auto* d = FindDecomposition(cp);
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  out->insert(out->end(), nfc_data::kDecompFlat + d->offset,
              nfc_data::kDecompFlat + d->offset + d->length);
}

// Stable sort of each run of non-starters by combining class.
void CanonicalOrder(std::vector<char32_t>* cps) {
  size_t i = 0;
  while (i < cps->size()) {
    if (CombiningClass((*cps)[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps->size() && CombiningClass((*cps)[j]) != 0) ++j;
    std::stable_sort(cps->begin() + i, cps->begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClass(a) < CombiningClass(b); });
    i = j;
  }
}

std::vector<char32_t> ComposeAll(const std::vector<char32_t>& cps) {
  std::vector<char32_t> out;
  out.reserve(cps.size());
  int64_t starter = -1;
  uint8_t last_ccc = 0;
  for (char32_t c : cps) {
    const uint8_t ccc = CombiningClass(c);
    if (starter >= 0) {
      const bool adjacent = static_cast<int64_t>(out.size()) - 1 == starter;
      if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
        const char32_t composite = Compose(out[starter], c);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (ccc == 0) starter = static_cast<int64_t>(out.size());
    last_ccc = ccc;
    out.push_back(c);
  }
  return out;
}

}  // namespace

bool IsNfcQuick(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const char32_t cp = NextCodePoint(s, &pos);
    if (CombiningClass(cp) != 0 || FindDecomposition(cp) != nullptr || IsCompositionSecond(cp) ||
        IsHangulJamoVowelOrTrail(cp)) {
      return false;
    }
  }
  return true;
}

std::string ToNfc(std::string_view s) {
  if (IsNfcQuick(s)) return std::string(s);
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) Decompose(NextCodePoint(s, &pos), &cps);
  CanonicalOrder(&cps);
  std::string out;
  out.reserve(s.size());
  for (char32_t c : ComposeAll(cps)) AppendUtf8(c, &out);
  return out;
}

}  // namespace lil
