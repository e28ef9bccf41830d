// File: engine/tokenizer/bpe_model.cc
// BPE merge loop in the same order as HF tokenizers (lowest rank first, leftmost on ties), so
// ids match exactly; SentencePiece score order maps onto ranks.
#include "engine/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "common/status.h"
#include "engine/tokenizer/string_view_compat.h"
#include "engine/tokenizer/utf8.h"

namespace lil {

absl::Status BpeModel::Init(std::vector<std::string> id_to_token, BpeOptions options) {
  id_to_token_ = std::move(id_to_token);
  options_ = options;
  token_to_id_.reserve(id_to_token_.size());
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    if (id_to_token_[id].empty()) continue;
    token_to_id_.try_emplace(id_to_token_[id], static_cast<TokenId>(id));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = token_to_id_.find(name);
    byte_tokens_[b] = it == token_to_id_.end() ? -1 : it->second;
  }
  if (options_.unk_id &&
      (*options_.unk_id < 0 || *options_.unk_id >= static_cast<TokenId>(id_to_token_.size()))) {
    return InvalidArgument("model.unk_token: id ", *options_.unk_id, " is outside the vocab of ",
                           id_to_token_.size());
  }
  return absl::OkStatus();
}

absl::Status BpeModel::AddMerge(std::string_view left, std::string_view right, int32_t rank,
                                std::string_view where) {
  auto a = token_to_id_.find(Sv(left)), b = token_to_id_.find(Sv(right));
  auto merged = token_to_id_.find(absl::StrCat(Sv(left), Sv(right)));
  if (a == token_to_id_.end() || b == token_to_id_.end()) {
    return InvalidArgument(Sv(where), ": merge \"", Sv(left), " ", Sv(right),
                           "\" uses a token not in the vocab");
  }
  if (merged == token_to_id_.end()) {
    return InvalidArgument(Sv(where), ": merge \"", Sv(left), " ", Sv(right), "\" produces \"",
                           Sv(left), Sv(right), "\", which is not in the vocab");
  }
  // The first (lowest-rank) occurrence of a pair wins, as in HF.
  merges_.try_emplace(PairKey(a->second, b->second), Merge{rank, merged->second});
  return absl::OkStatus();
}

void BpeModel::AddMergesFromScores(const std::vector<float>& scores,
                                   const std::vector<bool>& mergeable) {
  // Rank = position in descending score order, equal scores share a rank (leftmost wins).
  std::vector<TokenId> order;
  for (size_t id = 0; id < id_to_token_.size() && id < scores.size(); ++id) {
    if (id < mergeable.size() && mergeable[id]) order.push_back(static_cast<TokenId>(id));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](TokenId x, TokenId y) { return scores[x] > scores[y]; });
  int32_t rank = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && scores[order[i]] != scores[order[i - 1]]) rank = static_cast<int32_t>(i);
    const std::string& token = id_to_token_[order[i]];
    size_t split = 0;
    while (true) {
      // Split only at character boundaries.
      size_t next = split;
      NextCodePoint(token, &next);
      split = next;
      if (split >= token.size()) break;
      auto a = token_to_id_.find(Sv(std::string_view(token).substr(0, split)));
      auto b = token_to_id_.find(Sv(std::string_view(token).substr(split)));
      if (a == token_to_id_.end() || b == token_to_id_.end()) continue;
      auto [it, inserted] =
          merges_.try_emplace(PairKey(a->second, b->second), Merge{rank, order[i]});
      (void)it;
      (void)inserted;
    }
  }
}

const BpeModel::Merge* BpeModel::FindMerge(TokenId a, TokenId b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::optional<TokenId> BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(Sv(token));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<TokenId>* ids) const {
  size_t pos = 0;
  bool previous_unk = false;
  while (pos < word.size()) {
    const size_t begin = pos;
    NextCodePoint(word, &pos);
    const std::string_view ch = word.substr(begin, pos - begin);
    auto it = token_to_id_.find(Sv(ch));
    if (it != token_to_id_.end()) {
      ids->push_back(it->second);
      previous_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes = true;
      for (char c : ch) all_bytes = all_bytes && byte_tokens_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (char c : ch) ids->push_back(byte_tokens_[static_cast<uint8_t>(c)]);
        previous_unk = false;
        continue;
      }
    }
    if (options_.unk_id) {
      if (!(options_.fuse_unk && previous_unk)) ids->push_back(*options_.unk_id);
      previous_unk = true;
    }
    // Without unk or byte fallback the character is dropped, as in HF.
  }
}

void BpeModel::MergeSymbols(std::vector<TokenId>* ids) const {
  const int n = static_cast<int>(ids->size());
  if (n < 2) return;
  struct Symbol {
    TokenId id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  struct Candidate {
    int32_t rank;
    int pos;
    TokenId merged;
    bool operator<(const Candidate& o) const {  // max-heap: lowest rank, then leftmost, on top
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  auto push_pair = [&](int left) {
    if (left < 0 || symbols[left].next < 0) return;
    if (const Merge* m = FindMerge(symbols[left].id, symbols[symbols[left].next].id)) {
      queue.push({m->rank, left, m->merged});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const Merge* m = FindMerge(left.id, symbols[left.next].id);
    if (m == nullptr || m->merged != top.merged) continue;  // stale entry
    Symbol& right = symbols[left.next];
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  ids->clear();
  for (int i = 0; i >= 0 && i < n; i = symbols[i].next) ids->push_back(symbols[i].id);
}

void BpeModel::EncodeWord(std::string_view word, std::vector<TokenId>* out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    auto it = token_to_id_.find(Sv(word));
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    auto it = cache_.find(Sv(word));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> ids;
  InitialSymbols(word, &ids);
  MergeSymbols(&ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace lil
