// File: tests/engine/tokenizer/tokenizer_unit_test.cc
// Unit tests of the tokenizer: BPE merges, added-token rules, post-processing, NFC, lossy
// UTF-8, and the errors for bad input (malformed JSON, unsupported types, missing files).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/tokenizer/nfc.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "tests/engine/tokenizer/tiny_tokenizers.h"

namespace lil {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Tokenizer> Load(const nlohmann::json& j, const std::string& name) {
  auto tok = Tokenizer::FromFile(lil::testing::WriteTempJson(name, j.dump()));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

TEST(TokenizerTest, ByteLevelMergesAndRoundTrip) {
  auto tok = Load(lil::testing::TinyByteLevelJson(), "bl.json");
  ASSERT_NE(tok, nullptr);
  // "hello" merges fully; " w" is one merge; "x" stays a byte.
  EXPECT_THAT(tok->Encode("hello wx", false), ElementsAre(259, 260, 'x'));
  EXPECT_EQ(tok->Decode(tok->Encode("hello wx", false), false), "hello wx");
  const std::string multi = "h\xC3\xA9 \xF0\x9F\x98\x80";  // "hé 😀"
  EXPECT_EQ(tok->Decode(tok->Encode(multi, false), false), multi);
  EXPECT_EQ(tok->vocab_size(), 303);
}

TEST(TokenizerTest, AddedTokensSplitTextAndHonourStripRules) {
  auto tok = Load(lil::testing::TinyByteLevelJson(), "bl2.json");
  ASSERT_NE(tok, nullptr);
  // Special token in the middle of text is matched literally.
  EXPECT_THAT(tok->Encode("x<|end|>y", false), ElementsAre('x', 300, 'y'));
  // <tool> has lstrip/rstrip: it absorbs the surrounding spaces.
  EXPECT_THAT(tok->Encode("a  <tool>  b", false), ElementsAre('a', 301, 'b'));
  // "word" is single_word: matched as a whole word, not inside "swords".
  EXPECT_THAT(tok->Encode("a word", false), ElementsAre('a', ' ', 302));
  EXPECT_THAT(tok->Encode("swords", false), ElementsAre('s', 'w', 'o', 'r', 'd', 's'));
  // Decode keeps special tokens unless asked to skip them.
  const std::vector<TokenId> ids = {'a', 300, 'b', 301};
  EXPECT_EQ(tok->Decode(ids, false), "a<|end|>b<tool>");
  EXPECT_EQ(tok->Decode(ids, true), "ab<tool>");
  EXPECT_TRUE(tok->IsSpecial(300));
  EXPECT_FALSE(tok->IsSpecial(301));
  EXPECT_EQ(tok->TokenToId("<tool>"), 301);
  EXPECT_EQ(tok->TokenToId("hello"), 259);
  EXPECT_EQ(tok->TokenToId("nope"), std::nullopt);
  EXPECT_EQ(tok->IdToToken(260), "\xC4\xA0w");
  EXPECT_EQ(tok->IdToToken(99999), "");
}

TEST(TokenizerTest, UnknownIdsAreSkippedAndInvalidInputIsRepaired) {
  auto tok = Load(lil::testing::TinyByteLevelJson(), "bl3.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Decode({'a', -5, 100000, 'b'}, false), "ab");
  // Invalid UTF-8 input is encoded as U+FFFD rather than crashing the regex engine.
  EXPECT_EQ(tok->Decode(tok->Encode("a\xFF\xC3(b", false), false), "a\xEF\xBF\xBD\xEF\xBF\xBD(b");
}

TEST(TokenizerTest, SentencePieceByteFallbackAndBos) {
  auto tok = Load(lil::testing::TinySentencePieceJson(), "spm.json");
  ASSERT_NE(tok, nullptr);
  // "ab c": normalizer gives "▁ab▁c"; ▁a + b merge order: "▁ a" (rank 0) before "a b".
  const std::vector<TokenId> ids = tok->Encode("ab c", true);
  ASSERT_GE(ids.size(), 1u);
  EXPECT_EQ(ids.front(), 1);  // <s> from the template
  EXPECT_THAT(ids, ElementsAre(1, 6, 4, 2, 5));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->bos_token(), "<s>");
  // "é" is not in the vocab: two byte-fallback tokens, decoded back to "é".
  const std::vector<TokenId> e = tok->Encode("\xC3\xA9", false);
  EXPECT_THAT(e, ElementsAre(2, 8 + 0xC3, 8 + 0xA9));
  EXPECT_EQ(tok->Decode(e, false), "\xC3\xA9");
  EXPECT_EQ(tok->Decode(tok->Encode("ab c", true), true), "ab c");
  // An incomplete byte group decodes to one U+FFFD per byte (HF's ByteFallback rule).
  EXPECT_EQ(tok->Decode({8 + 0xE2, 8 + 0x82, 3}, false),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "a");
}

TEST(TokenizerTest, ErrorsNameTheFileAndTheProblem) {
  auto missing = Tokenizer::FromFile("/nonexistent/dir/tokenizer.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/dir/tokenizer.json"));

  const std::string bad_path = lil::testing::WriteTempJson("bad.json", "{\"model\": {\"vocab\": ");
  auto bad = Tokenizer::FromFile(bad_path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not valid JSON"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(bad_path));

  nlohmann::json j = lil::testing::TinyByteLevelJson();
  j["model"]["type"] = "Unigram";
  auto unigram = Tokenizer::FromFile(lil::testing::WriteTempJson("unigram.json", j.dump()));
  EXPECT_EQ(unigram.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(unigram.status().message()), HasSubstr("Unigram"));

  j = lil::testing::TinyByteLevelJson();
  j["model"]["merges"].push_back("q zz");
  auto merge = Tokenizer::FromFile(lil::testing::WriteTempJson("merge.json", j.dump()));
  EXPECT_EQ(merge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(merge.status().message()), HasSubstr("merges[5]"));

  j = lil::testing::TinyByteLevelJson();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  auto pre = Tokenizer::FromFile(lil::testing::WriteTempJson("pre.json", j.dump()));
  EXPECT_EQ(pre.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(pre.status().message()), HasSubstr("pre_tokenizer"));

  j = lil::testing::TinyByteLevelJson();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  auto regex = Tokenizer::FromFile(lil::testing::WriteTempJson("regex.json", j.dump()));
  EXPECT_EQ(regex.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(regex.status().message()), HasSubstr("(unclosed"));

  j = lil::testing::TinyByteLevelJson();
  j["model"]["vocab"] = "not an object";
  auto vocab = Tokenizer::FromFile(lil::testing::WriteTempJson("vocab.json", j.dump()));
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(vocab.status().message()), HasSubstr("vocab"));
}

TEST(TokenizerTest, FromSpecErrors) {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = "mystery";
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
  auto unknown_pre = Tokenizer::FromSpec(spec);
  EXPECT_EQ(unknown_pre.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(unknown_pre.status().message()), HasSubstr("mystery"));

  spec.pre = "smollm";
  spec.merges = {"a"};
  auto bad_merge = Tokenizer::FromSpec(spec);
  EXPECT_THAT(std::string(bad_merge.status().message()), HasSubstr("tokenizer.ggml.merges[0]"));

  spec.merges = {};
  spec.model = "bert";
  EXPECT_EQ(Tokenizer::FromSpec(spec).status().code(), absl::StatusCode::kUnimplemented);

  spec.model = "llama";
  spec.scores = {1.0f};
  auto scores = Tokenizer::FromSpec(spec);
  EXPECT_THAT(std::string(scores.status().message()), HasSubstr("scores"));

  spec.model = "gpt2";
  spec.bos_id = 999;
  EXPECT_THAT(std::string(Tokenizer::FromSpec(spec).status().message()), HasSubstr("bos"));

  spec.bos_id = 1;
  spec.add_bos = true;
  auto ok = Tokenizer::FromSpec(spec);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT((*ok)->Encode("A1", true), ElementsAre(1, 'A', '1'));
}

TEST(NfcTest, ComposesReordersAndKeepsNfcText) {
  EXPECT_EQ(ToNfc("e\xCC\x81"), "\xC3\xA9");                                 // e + acute -> é
  EXPECT_EQ(ToNfc("\xE2\x84\xAB"), "\xC3\x85");                              // Angstrom sign -> Å
  EXPECT_EQ(ToNfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  // q + dot above (230) + dot below (220): reordered to below, above; no composite exists.
  EXPECT_EQ(ToNfc("q\xCC\x87\xCC\xA3"), "q\xCC\xA3\xCC\x87");
  // A + ring above + dot below: reordered, A + dot below composes to Ạ, the ring stays.
  EXPECT_EQ(ToNfc("A\xCC\x8A\xCC\xA3"), "\xE1\xBA\xA0\xCC\x8A");  // Ạ + ring
  EXPECT_TRUE(IsNfcQuick("plain ascii and \xE4\xB8\xAD\xE6\x96\x87"));
  EXPECT_FALSE(IsNfcQuick("e\xCC\x81"));
}

TEST(Utf8Test, LossyMatchesFromUtf8LossyRules) {
  EXPECT_EQ(ToValidUtf8("a\xE2\x82"), "a\xEF\xBF\xBD");  // truncated: one U+FFFD
  EXPECT_EQ(ToValidUtf8("\xC3("), "\xEF\xBF\xBD(");      // bad continuation
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));  // overlong
  std::string out;
  Utf8LossyStream stream;
  stream.Feed("\xF0\x9F", &out);
  EXPECT_EQ(out, "");  // held, not emitted partially
  stream.Feed("\x98\x80", &out);
  EXPECT_EQ(out, "\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace lil
