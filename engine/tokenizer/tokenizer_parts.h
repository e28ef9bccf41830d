// File: engine/tokenizer/tokenizer_parts.h
// The pieces a Tokenizer is made of, filled by the loaders (tokenizer.json in
// tokenizer_json.cc, GGUF TokenizerSpec in tokenizer_gguf.cc) and used by tokenizer.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ids.h"
#include "engine/tokenizer/added_vocab.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace lil {

// Ids added around a single sequence when add_special_tokens is set (TemplateProcessing,
// Roberta/Bert processing, or GGUF add_bos/add_eos).
struct PostProcessor {
  std::vector<TokenId> prefix, suffix;
};

struct TokenizerParts {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  std::vector<AddedToken> added_tokens;
  DecoderConfig decoder;
  PostProcessor post;

  // Filled by FinishParts() from the above.
  std::vector<std::string> id_to_token;  // model vocab, overlaid/extended by added tokens
  std::vector<uint8_t> is_added, is_special;
  absl::flat_hash_map<std::string, TokenId> added_to_id;
  AddedTokenMatcher raw_matcher;         // normalized=false added tokens
  AddedTokenMatcher normalized_matcher;  // normalized=true added tokens

  std::optional<TokenId> bos_id, eos_id;
  std::string chat_template;
};

// Builds the id tables and added-token matchers once the loader has filled the parts.
void FinishParts(TokenizerParts* parts);

}  // namespace lil
