// File: engine/tokenizer/tokenizer_spec.h
// A tokenizer described as plain data, independent of the file it came from. The GGUF reader
// fills it from tokenizer.ggml.* metadata; Tokenizer::FromSpec builds a tokenizer from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"

namespace lil {

struct TokenizerSpec {
  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE).
  std::string model;
  // tokenizer.ggml.pre: pre-tokenizer name ("smollm", "llama-bpe", "qwen2", ...).
  std::string pre;
  // id -> token text (byte-level form for gpt2, '▁' form for llama).
  std::vector<std::string> tokens;
  std::vector<float> scores;  // SentencePiece scores (may be empty)
  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;  // "a b" pairs, rank order
  std::optional<TokenId> bos_id, eos_id, pad_id, unk_id;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix ("llama" model: prepend "▁")
  std::string chat_template;     // tokenizer.chat_template (Jinja), may be empty
};

}  // namespace lil
