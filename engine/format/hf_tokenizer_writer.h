// File: engine/format/hf_tokenizer_writer.h
// Writes a small byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) in the
// style of a model family: its pre-tokenizer, special tokens and a chat template.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/format/model_family.h"

namespace lil {

struct WrittenTokenizer {
  int64_t num_tokens = 0;   // 256 bytes + merged tokens + special tokens
  int64_t num_merges = 0;
  SpecialTokenIds ids;
};

// Writes into `dir` a tokenizer of at most `max_tokens` tokens (up to 400 merges learned from
// TokenizerTrainingText(), fewer when max_tokens is small). INVALID_ARGUMENT when max_tokens
// cannot hold the 256 byte tokens and the special tokens.
absl::StatusOr<WrittenTokenizer> WriteHfTokenizer(const std::string& dir, TokenizerStyle style,
                                                  int64_t max_tokens, int64_t model_max_length);

}  // namespace lil
