// File: engine/tokenizer/nfc_data.h
// Unicode tables for NFC normalization, generated into nfc_data.cc by gen_nfc_data.py.
// All tables are sorted by their first field (binary search).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lil::nfc_data {

struct CccEntry {
  char32_t cp;
  uint8_t ccc;  // canonical combining class (only non-zero ones are listed)
};
struct DecompEntry {
  char32_t cp;
  uint32_t offset;  // into kDecompFlat: the full canonical decomposition
  uint32_t length;
};
struct CompEntry {
  char32_t first, second, composite;  // primary composites only (no exclusions)
};

extern const CccEntry kCcc[];
extern const size_t kCccSize;
extern const char32_t kDecompFlat[];
extern const DecompEntry kDecomp[];
extern const size_t kDecompSize;
extern const CompEntry kComp[];
extern const size_t kCompSize;
extern const char32_t kCompSecond[];
extern const size_t kCompSecondSize;

}  // namespace lil::nfc_data
