// File: scheduler/sparse_policy.h
// Page-level sparse KV policies as pure functions over a page table: which logical pages a
// request may release (sink, h2o). Quest keeps every page; its scoring and top-k run in the
// engine from per-page key min/max, so here it is only validated and rounded to pages.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/ids.h"
#include "scheduler/request_params.h"

namespace lil {

inline int32_t PagesForTokens(int32_t tokens, int32_t page_size) {
  return (tokens + page_size - 1) / page_size;
}

// Checks a request's sparse params ("sparse.budget_tokens 16 is smaller than sink_tokens +
// window_tokens + one page (48) for mode h2o").
absl::Status ValidateSparseParams(const SparseParams& p, int32_t page_size);

// The params the engine sees: budgets, sink and window rounded up to whole pages.
SparseParams RoundSparseParams(const SparseParams& p, int32_t page_size);

// Logical pages that hold no position of [0, sink) U [len - window, len), excluding the
// last page (being written). `len` is the sequence length after this step. Only slots
// that still hold a page are returned.
std::vector<int32_t> SinkPagesToFree(const std::vector<PageId>& table, int32_t len,
                                     int32_t page_size, const SparseParams& p);

// h2o: keep the sink pages, the recent-window pages and the last page, then the heaviest
// remaining pages by accumulated mass until budget pages are kept; return the rest.
// Ties go to the newer page (deterministic).
std::vector<int32_t> H2OPagesToFree(const std::vector<PageId>& table,
                                    const std::vector<float>& page_mass, int32_t len,
                                    int32_t page_size, const SparseParams& p);

}  // namespace lil
