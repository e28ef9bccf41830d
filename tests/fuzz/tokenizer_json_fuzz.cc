// File: tests/fuzz/tokenizer_json_fuzz.cc
// Arbitrary bytes as a tokenizer.json: loading either fails with a status or gives a
// tokenizer whose encodings stay inside its vocabulary and whose streaming detokenizer agrees
// with Decode.
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lil::fuzz::WriteScratch("tokenizer.json", data, size);
  auto tok = lil::Tokenizer::FromFile(path);
  if (!tok.ok()) return 0;
  const lil::Tokenizer& t = **tok;
  for (const char* text : {"Hello world", " \xC3\xA9t\xC3\xA9\n\n  x", "<|end|>word <tool> 123",
                           "\xFF\xFE invalid", ""}) {
    const auto ids = t.Encode(text, true);
    for (lil::TokenId id : ids) {
      FUZZ_CHECK(id >= 0 && id < t.vocab_size(), "id %d outside vocab %d", id, t.vocab_size());
    }
    const std::string decoded = t.Decode(ids, false);
    lil::IncrementalDetokenizer detok(t, false);
    std::string streamed;
    for (lil::TokenId id : ids) streamed += detok.Push(id);
    streamed += detok.Flush();
    FUZZ_CHECK(streamed == decoded, "streamed %zu bytes, decoded %zu", streamed.size(), decoded.size());
  }
  return 0;
}
