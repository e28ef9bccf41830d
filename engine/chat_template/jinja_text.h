// File: engine/chat_template/jinja_text.h
// Python string semantics over UTF-8: code-point indexing, str.strip/split/upper/lower, and the
// exact text of repr(float), repr(str) and json.dumps strings that templates print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lil::jinja {

// Invalid UTF-8 bytes decode to U+FFFD (inputs from JSON are valid; templates may not be).
std::u32string DecodeUtf8(std::string_view s);
void AppendUtf8(char32_t cp, std::string* out);
std::string EncodeUtf8(std::u32string_view s);
size_t CodePointCount(std::string_view s);

// Python's str.isspace() for one code point.
bool IsPySpace(char32_t cp);

// str.strip / lstrip / rstrip; `chars` unset strips whitespace.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right);
// str.split / rsplit; `sep` unset splits on runs of whitespace. maxsplit < 0: no limit.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit);
std::vector<std::string> PyRSplit(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit);
// str.splitlines() (\n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029).
std::vector<std::string> PySplitLines(std::string_view s);
// str.replace with an optional count (< 0: all).
std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl,
                      int64_t count);

// Case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic.
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyCapitalize(std::string_view s);
// Jinja's title filter: upper-cases the first letter after runs of [-\s({[<].
std::string JinjaTitle(std::string_view s);
// Python str.title(): letters after a non-letter are upper-cased.
std::string PyTitle(std::string_view s);

// repr(float) / str(float): shortest round-trip digits, "1.0", "1e+16", "nan", "inf".
std::string PyFloatRepr(double f);
// repr(str): quotes and escapes as CPython does.
std::string PyStrRepr(std::string_view s);
// json.dumps of a string (with the quotes).
std::string JsonQuote(std::string_view s, bool ensure_ascii);

}  // namespace lil::jinja
