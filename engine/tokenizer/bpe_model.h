// File: engine/tokenizer/bpe_model.h
// The BPE model: vocabulary, merge table and the merge loop (a priority queue over adjacent
// pairs, O(n log n) per word) with a word cache. Serves both byte-level BPE (GPT-2, Llama 3,
// Qwen) and SentencePiece-style BPE (byte_fallback "<0xAB>" tokens, or merges derived from
// SentencePiece scores for GGUF "llama" vocabularies).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace lil {

struct BpeOptions {
  bool byte_fallback = false;  // characters missing from the vocab become <0xAB> tokens
  std::optional<TokenId> unk_id;
  bool fuse_unk = false;       // consecutive unknown characters become one unk token
  bool ignore_merges = false;  // a word that is itself in the vocab is taken whole (Llama 3)
};

class BpeModel {
 public:
  // `id_to_token` covers the model vocabulary (ids 0..n-1; gaps as empty strings).
  absl::Status Init(std::vector<std::string> id_to_token, BpeOptions options);
  // Adds the merge (left, right) with `rank` (lower merges first). `where` names the source
  // for errors, e.g. "model.merges[17]".
  absl::Status AddMerge(std::string_view left, std::string_view right, int32_t rank,
                        std::string_view where);
  // SentencePiece BPE: merge the pair whose concatenation is in the vocab with the highest
  // score. Builds the equivalent merge table from every split of every eligible token.
  void AddMergesFromScores(const std::vector<float>& scores, const std::vector<bool>& mergeable);

  // Appends the ids of one pre-tokenized word.
  void EncodeWord(std::string_view word, std::vector<TokenId>* out) const;

  std::optional<TokenId> TokenToId(std::string_view token) const;
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    int32_t rank;
    TokenId merged;
  };
  static uint64_t PairKey(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* FindMerge(TokenId a, TokenId b) const;
  // Initial symbols of a word: one per character (or byte-fallback bytes / unk).
  void InitialSymbols(std::string_view word, std::vector<TokenId>* ids) const;
  void MergeSymbols(std::vector<TokenId>* ids) const;

  std::vector<std::string> id_to_token_;
  absl::flat_hash_map<std::string, TokenId> token_to_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  TokenId byte_tokens_[256];  // <0xAB> ids, or -1

  static constexpr size_t kMaxCachedWordBytes = 64;
  static constexpr size_t kMaxCacheEntries = 1 << 18;
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<TokenId>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace lil
