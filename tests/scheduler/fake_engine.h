// File: tests/scheduler/fake_engine.h
// A fake engine for scheduler tests: "samples" a token that depends only on (request,
// position), so recompute after preemption reproduces it, and keeps a fake KV pool (the
// token written at each page slot) to catch page aliasing and prefix-cache corruption.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "scheduler/step_plan.h"

namespace lil::testing {

class FakeEngine {
 public:
  FakeEngine(int32_t num_pages, int32_t page_size, int32_t vocab)
      : page_size_(page_size), vocab_(vocab), kv_(static_cast<size_t>(num_pages) * page_size, -1) {}

  // The token "sampled" after position `pos` of request `id` (pos = sequence length - 1).
  TokenId TokenAt(RequestId id, int32_t pos) const {
    uint64_t h = id.value * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(pos) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return static_cast<TokenId>(h % static_cast<uint64_t>(vocab_));
  }

  // Text of a token: short pieces over a tiny alphabet so stop strings cross boundaries.
  static std::string TextOf(TokenId t) {
    static const char* kPieces[] = {"a", "b", "c", " ", "ab", "ba", "c ", " a", "bc", "abc"};
    return kPieces[static_cast<uint32_t>(t) % 10];
  }

  // Writes each seq's tokens into the fake KV pool and returns a result. `check` receives an
  // error message for any plan inconsistency (empty when none).
  StepResult Execute(const StepPlan& plan, std::string* error) {
    StepResult result;
    for (const ScheduledSeq& seq : plan.seqs) {
      SeqOutput& out = result.seqs.emplace_back();
      out.id = seq.id;
      const int32_t n = static_cast<int32_t>(seq.tokens.size());
      for (int32_t i = 0; i < n; ++i) {
        const int32_t pos = seq.start_pos + i;
        const int32_t slot = pos / page_size_;
        if (slot >= static_cast<int32_t>(seq.page_table.size()) || !seq.page_table[slot].valid()) {
          *error = "write to a missing page slot";
          return result;
        }
        kv_[static_cast<size_t>(seq.page_table[slot].value) * page_size_ + pos % page_size_] =
            seq.tokens[i];
      }
      int32_t live = 0;
      for (PageId p : seq.page_table) live += p.valid();
      out.pages_attended = live;
      if (seq.sample) {
        out.token = TokenAt(seq.id, seq.start_pos + n - 1);
        out.text = TextOf(out.token);
        out.logprob = -0.5f;
      }
      if (seq.collect_page_mass) {
        out.page_mass.resize(seq.page_table.size());
        for (size_t i = 0; i < out.page_mass.size(); ++i) {
          out.page_mass[i] = seq.page_table[i].valid()
                                 ? static_cast<float>(TokenAt(seq.id, static_cast<int32_t>(i)) % 7)
                                 : 0.0f;
        }
      }
    }
    return result;
  }

  // The token stored at `pos` of a sequence with this page table (-1 if never written).
  TokenId Stored(const std::vector<PageId>& table, int32_t pos) const {
    const PageId p = table[pos / page_size_];
    return kv_[static_cast<size_t>(p.value) * page_size_ + pos % page_size_];
  }

 private:
  int32_t page_size_;
  int32_t vocab_;
  std::vector<TokenId> kv_;
};

}  // namespace lil::testing
