// File: engine/tokenizer/tokenizer.h
// Text <-> token ids for the supported model families (byte-level BPE: GPT-2, SmolLM2,
// Llama 3, Qwen; SentencePiece-style BPE with byte fallback: Llama 2, Mistral), loaded from
// tokenizer.json or a GGUF TokenizerSpec, matching HuggingFace tokenizers id for id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/ids.h"
#include "engine/tokenizer/tokenizer_spec.h"

namespace lil {

struct TokenizerParts;
class DecodeStream;

// Immutable after loading; Encode/Decode are thread-safe.
class Tokenizer {
 public:
  // path: a tokenizer.json file, or a HuggingFace model directory holding tokenizer.json
  // (+ tokenizer_config.json: bos/eos tokens, chat_template; also read next to a bare file).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // A GGUF tokenizer (model "gpt2" or "llama").
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSpec(const TokenizerSpec& spec);
  ~Tokenizer();

  // add_special_tokens applies the post-processor (e.g. Llama 3's <|begin_of_text|>).
  // Invalid UTF-8 in `text` is replaced by U+FFFD first.
  std::vector<TokenId> Encode(std::string_view text, bool add_special_tokens) const;
  // Unknown ids are skipped; invalid byte sequences decode to U+FFFD, as in HF.
  std::string Decode(absl::Span<const TokenId> ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;
  std::optional<TokenId> bos_id() const;
  std::optional<TokenId> eos_id() const;
  std::optional<TokenId> TokenToId(std::string_view token) const;  // exact vocab/added token
  std::string IdToToken(TokenId id) const;                         // raw vocab string, "" if none
  bool IsSpecial(TokenId id) const;
  const std::string& chat_template() const;  // may be empty
  std::string bos_token() const;             // token text, "" if none
  std::string eos_token() const;

 private:
  friend class IncrementalDetokenizer;
  explicit Tokenizer(std::unique_ptr<TokenizerParts> parts);
  void EncodeSegment(std::string_view text, bool at_origin, std::vector<TokenId>* ids) const;
  // Feeds one id to a decode stream (skipping unknown and, if asked, special ids).
  void PushId(TokenId id, bool skip_special_tokens, DecodeStream* stream) const;

  std::unique_ptr<TokenizerParts> parts_;
};

// Streaming detokenizer: Push returns the newly completed text and never emits a partial
// UTF-8 sequence; the concatenation of all outputs (plus Flush) equals
// Decode(all ids, skip_special_tokens). O(1) amortized per token: it keeps only the decoder
// state (held-back bytes), never the whole sequence. Not thread-safe; `tok` must outlive it.
class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(const Tokenizer& tok, bool skip_special_tokens);
  ~IncrementalDetokenizer();
  std::string Push(TokenId id);
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_tokens_;
  std::unique_ptr<DecodeStream> stream_;
};

}  // namespace lil
