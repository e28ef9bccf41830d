// File: engine/tokenizer/byte_level.h
// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE vocabularies
// (a space is stored as "Ġ", a newline as "Ċ").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lil {

// UTF-8 text of the character that stands for `byte`.
const std::string& ByteToUnicode(uint8_t byte);

// Maps every byte of `text` to its character.
std::string ByteLevelEncode(std::string_view text);

// The byte a mapped character stands for, or nullopt for characters outside the mapping.
std::optional<uint8_t> UnicodeToByte(char32_t cp);

}  // namespace lil
