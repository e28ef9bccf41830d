// File: tests/engine/tokenizer/tiny_tokenizers.h
// Small tokenizer.json files built in the tests: a byte-level BPE (GPT-2 alphabet, a few
// merges, added tokens) and a SentencePiece-style BPE with byte fallback (Llama 2 layout).
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/tokenizer/byte_level.h"

namespace lil::testing {

inline std::string WriteTempJson(const std::string& name, const std::string& text) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("lil_tok_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

// Byte-level BPE: ids 0..255 are the byte characters, then merges "h e", "he l", "hel l",
// "hell o", "Ġ w"; added tokens <|end|> (special, id 300) and <tool> (not special, id 301,
// lstrip+rstrip) and "word" (single_word, id 302).
inline nlohmann::json TinyByteLevelJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToUnicode(static_cast<uint8_t>(b))] = b;
  const char* merged[] = {"he", "hel", "hell", "hello", "\xC4\xA0w"};
  for (int i = 0; i < 5; ++i) vocab[merged[i]] = 256 + i;
  nlohmann::json j;
  j["version"] = "1.0";
  j["added_tokens"] = {{{"id", 300},
                        {"content", "<|end|>"},
                        {"special", true},
                        {"normalized", false},
                        {"lstrip", false},
                        {"rstrip", false},
                        {"single_word", false}},
                       {{"id", 301},
                        {"content", "<tool>"},
                        {"special", false},
                        {"normalized", false},
                        {"lstrip", true},
                        {"rstrip", true},
                        {"single_word", false}},
                       {{"id", 302},
                        {"content", "word"},
                        {"special", false},
                        {"normalized", false},
                        {"lstrip", false},
                        {"rstrip", false},
                        {"single_word", true}}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", {"h e", "he l", "hel l", "hell o", "\xC4\xA0 w"}}};
  return j;
}

// SentencePiece-style BPE: "▁", a, b, c, "▁a", "ab", <0x00>..<0xFF>, <s>; Llama 2 normalizer
// (Prepend + Replace) and decoder (Replace, ByteFallback, Fuse, Strip); BOS template.
inline nlohmann::json TinySentencePieceJson() {
  const std::string space = "\xE2\x96\x81";
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  vocab["<unk>"] = id++;
  vocab["<s>"] = id++;
  for (const std::string& t : {space, std::string("a"), std::string("b"), std::string("c"),
                               space + "a", std::string("ab")}) {
    vocab[t] = id++;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = id++;
  }
  nlohmann::json j;
  j["added_tokens"] = {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}}};
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", space}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"byte_fallback", true},
                {"unk_token", "<unk>"},
                {"merges", {space + " a", "a b"}}};
  return j;
}

}  // namespace lil::testing
