// File: engine/chat_template/jinja_lexer.h
// Splits a Jinja template into text and tag tokens with the whitespace rules transformers uses:
// trim_blocks, lstrip_blocks, `-`/`+` markers, newline normalization, one trailing newline dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lil::jinja {

enum class TokenType {
  kText,        // template data between tags (value: the text)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword
  kString,      // string literal (value: decoded)
  kInt,
  kFloat,
  kOp,          // operator or punctuation (value: its text)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based, in the template source
  int column = 1;  // 1-based, in bytes
};

// Errors read "line L, column C: ...".
absl::StatusOr<std::vector<Token>> Lex(std::string_view source);

// "line L, column C: " for error messages.
std::string Where(int line, int column);

}  // namespace lil::jinja
