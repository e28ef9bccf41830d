// File: engine/tokenizer/nfc.h
// Unicode NFC normalization (the "NFC" normalizer of tokenizer.json, used by Qwen), built on
// generated tables so the tokenizer needs no ICU. Input must be valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace lil {

// True when `s` is certainly already in NFC (the common case: ASCII, CJK, most text), so
// callers can skip the full algorithm.
bool IsNfcQuick(std::string_view s);

// Canonical decomposition, canonical ordering, canonical composition (UAX #15).
std::string ToNfc(std::string_view s);

}  // namespace lil
