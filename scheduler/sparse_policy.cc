// File: scheduler/sparse_policy.cc
#include "scheduler/sparse_policy.h"

#include <algorithm>

#include "common/status.h"

namespace lil {
namespace {

const char* ModeName(SparseMode m) {
  switch (m) {
    case SparseMode::kDense:
      return "dense";
    case SparseMode::kSink:
      return "sink";
    case SparseMode::kQuest:
      return "quest";
    case SparseMode::kH2O:
      return "h2o";
  }
  return "unknown";
}

int32_t RoundUp(int32_t tokens, int32_t page_size) {
  return PagesForTokens(tokens, page_size) * page_size;
}

// First logical page of the recent window for a sequence of `len` tokens.
int32_t FirstWindowPage(int32_t len, int32_t window, int32_t page_size) {
  return std::max(0, len - window) / page_size;
}

}  // namespace

absl::Status ValidateSparseParams(const SparseParams& p, int32_t page_size) {
  const char* mode = ModeName(p.mode);
  if (p.mode == SparseMode::kDense) return absl::OkStatus();
  if (p.sink_tokens < 0 || p.window_tokens < 0 || p.budget_tokens < 0 || p.dense_layers < 0) {
    return InvalidArgument("sparse params for mode ", mode,
                           " must be >= 0, got sink_tokens=", p.sink_tokens,
                           " window_tokens=", p.window_tokens, " budget_tokens=", p.budget_tokens,
                           " dense_layers=", p.dense_layers);
  }
  switch (p.mode) {
    case SparseMode::kSink:
      if (p.window_tokens <= 0) {
        return InvalidArgument("sparse.window_tokens must be > 0 for mode sink, got ",
                               p.window_tokens);
      }
      return absl::OkStatus();
    case SparseMode::kQuest:
      if (p.budget_tokens <= 0) {
        return InvalidArgument("sparse.budget_tokens must be > 0 for mode quest, got ",
                               p.budget_tokens);
      }
      return absl::OkStatus();
    case SparseMode::kH2O: {
      const int32_t need = RoundUp(p.sink_tokens, page_size) +
                           RoundUp(p.window_tokens, page_size) + page_size;
      if (RoundUp(p.budget_tokens, page_size) < need) {
        return InvalidArgument("sparse.budget_tokens ", p.budget_tokens,
                               " is smaller than sink_tokens + window_tokens + one page (", need,
                               " tokens with page_size ", page_size, ") for mode h2o");
      }
      return absl::OkStatus();
    }
    default:
      return InvalidArgument("sparse.mode ", static_cast<int>(p.mode), " is not a known mode");
  }
}

SparseParams RoundSparseParams(const SparseParams& p, int32_t page_size) {
  SparseParams r = p;
  r.budget_tokens = RoundUp(p.budget_tokens, page_size);
  r.sink_tokens = RoundUp(p.sink_tokens, page_size);
  r.window_tokens = RoundUp(p.window_tokens, page_size);
  return r;
}

std::vector<int32_t> SinkPagesToFree(const std::vector<PageId>& table, int32_t len,
                                     int32_t page_size, const SparseParams& p) {
  std::vector<int32_t> out;
  if (len <= 0) return out;
  const int32_t sink_pages = PagesForTokens(p.sink_tokens, page_size);
  const int32_t last_page = (len - 1) / page_size;
  const int32_t end = std::min({FirstWindowPage(len, p.window_tokens, page_size), last_page,
                                static_cast<int32_t>(table.size())});
  for (int32_t i = sink_pages; i < end; ++i) {
    if (table[i].valid()) out.push_back(i);
  }
  return out;
}

std::vector<int32_t> H2OPagesToFree(const std::vector<PageId>& table,
                                    const std::vector<float>& page_mass, int32_t len,
                                    int32_t page_size, const SparseParams& p) {
  std::vector<int32_t> out;
  if (len <= 0) return out;
  // Pages covering [0, len); the table may not have the last one yet.
  const int32_t n = (len - 1) / page_size + 1;
  const int32_t sink_pages = std::min(n, PagesForTokens(p.sink_tokens, page_size));
  const int32_t window_first =
      std::max(sink_pages, std::min(FirstWindowPage(len, p.window_tokens, page_size), n - 1));
  int32_t protected_live = 0;
  for (int32_t i = 0; i < n; ++i) {
    // The last page counts even before it is allocated: it will be by this step.
    const bool live = i == n - 1 || (i < static_cast<int32_t>(table.size()) && table[i].valid());
    if ((i < sink_pages || i >= window_first) && live) ++protected_live;
  }
  std::vector<int32_t> candidates;
  for (int32_t i = sink_pages; i < window_first; ++i) {
    if (i < static_cast<int32_t>(table.size()) && table[i].valid()) candidates.push_back(i);
  }
  const int32_t budget_pages = p.budget_tokens / page_size;
  const int32_t keep = std::max(0, budget_pages - protected_live);
  if (static_cast<int32_t>(candidates.size()) <= keep) return out;
  auto mass = [&](int32_t i) { return i < static_cast<int32_t>(page_mass.size()) ? page_mass[i] : 0.f; };
  // Heaviest first; ties keep the newer page.
  auto heavier = [&](int32_t a, int32_t b) {
    const float ma = mass(a), mb = mass(b);
    return ma != mb ? ma > mb : a > b;
  };
  std::nth_element(candidates.begin(), candidates.begin() + keep, candidates.end(), heavier);
  out.assign(candidates.begin() + keep, candidates.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lil
