// File: tests/gpu/gpu_attention_test.cc
// Paged attention and Quest selection kernels against the CPU references on awkward shapes:
// page sizes 1, 3, 16, 17; GQA 1, 4, 8; head dims 64 and 128; an odd batch mixing a prefill
// chunk after cached pages, a decode token and a fresh prefill; a freed page (hole); sparse
// page lists; h2o page mass. Outputs start poisoned with NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <numeric>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/quest.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/quest.h"
#include "kernels/quest_fp8.h"
#include "tests/gpu/gpu_test_util.h"

namespace lil {
namespace {

using testing::AllClose;
using testing::DeviceArray;

struct Shape {
  int32_t page_size, group, head_dim;
};

struct Case {
  int32_t hkv = 2, heads = 0, d = 0, ps = 0, num_pages = 0;
  std::vector<int32_t> token_pos, token_seq;
  std::vector<int32_t> row_indptr{0}, row_pages, row_logical;
  std::vector<float> q, k, v;
};

// Three sequences: a 5-token chunk at position 2*ps+1 (after cached pages), a decode token
// at 3*ps+2 whose logical page 1 was freed, and a 4-token prefill from 0. `sparse` drops
// every other page (the newest kept) from the decode sequence's rows, per head differently.
// `spans` ((start position, tokens) per sequence) replaces the three sequences when given.
Case MakeCase(const Shape& s, bool sparse, uint64_t seed, std::vector<std::pair<int32_t, int32_t>> spans = {}) {
  Case c;
  c.ps = s.page_size;
  c.d = s.head_dim;
  c.heads = c.hkv * s.group;
  const std::vector<std::pair<int32_t, int32_t>> seqs =
      spans.empty() ? std::vector<std::pair<int32_t, int32_t>>{{2 * c.ps + 1, 5}, {3 * c.ps + 2, 1}, {0, 4}} : spans;
  std::vector<std::vector<int32_t>> tables;
  int32_t next_page = 0, pages_needed = 0;
  for (const auto& [start, n] : seqs) pages_needed += (start + n + c.ps - 1) / c.ps;
  std::vector<int32_t> perm(std::max(64 + 8 * c.ps, pages_needed + 8));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto [start, n] = seqs[i];
    const int32_t pages = (start + n + c.ps - 1) / c.ps;
    std::vector<int32_t> table;
    for (int32_t p = 0; p < pages; ++p) table.push_back(perm[next_page++]);
    if (i == 1 && pages > 2) table[1] = -1;  // freed by a sparse policy
    tables.push_back(table);
    for (int32_t j = 0; j < n; ++j) {
      c.token_pos.push_back(start + j);
      c.token_seq.push_back(static_cast<int32_t>(i));
    }
  }
  c.num_pages = *std::max_element(perm.begin(), perm.begin() + next_page) + 1;
  for (size_t i = 0; i < seqs.size(); ++i) {
    for (int32_t h = 0; h < c.hkv; ++h) {
      const int32_t pages = static_cast<int32_t>(tables[i].size());
      for (int32_t lp = 0; lp < pages; ++lp) {
        if (tables[i][lp] < 0) continue;
        if (sparse && i == 1 && lp != pages - 1 && (lp + h) % 2 == 0) continue;
        c.row_pages.push_back(tables[i][lp]);
        c.row_logical.push_back(lp);
      }
      c.row_indptr.push_back(static_cast<int32_t>(c.row_pages.size()));
    }
  }
  const size_t pool = static_cast<size_t>(c.num_pages) * c.hkv * c.ps * c.d;
  c.k = testing::RandomBf16Values(pool, seed + 1, 2.0f);
  c.v = testing::RandomBf16Values(pool, seed + 2);
  c.q = testing::RandomBf16Values(c.token_pos.size() * c.heads * c.d, seed + 3, 1.0f);
  return c;
}

float Scale(const Case& c) { return 1.0f / std::sqrt(static_cast<float>(c.d)); }

// kernels/cpu's paged attention on the case (fp32); fills *mass with the h2o page mass when
// given.
std::vector<float> CpuReference(const Case& c, std::vector<float>* mass) {
  std::vector<float> out(c.q.size());
  if (mass != nullptr) mass->assign(c.row_pages.size(), 0.0f);
  cpu::PagedAttentionParams rp;
  rp.q = c.q.data();
  rp.out = out.data();
  rp.kv = {const_cast<float*>(c.k.data()), const_cast<float*>(c.v.data()), nullptr, c.num_pages, c.hkv, c.ps, c.d};
  rp.num_tokens = static_cast<int32_t>(c.token_pos.size());
  rp.num_heads = c.heads;
  rp.token_pos = c.token_pos.data();
  rp.token_seq = c.token_seq.data();
  rp.row_indptr = c.row_indptr.data();
  rp.row_pages = c.row_pages.data();
  rp.row_logical = c.row_logical.data();
  rp.scale = Scale(c);
  rp.page_mass = mass != nullptr ? mass->data() : nullptr;
  cpu::PagedAttention(rp);
  return out;
}

// A case's inputs on the device and the kernel parameters over them (no split, no mass).
struct DeviceCase {
  explicit DeviceCase(const Case& c)
      : c(c), q(c.q), k(testing::ToBf16(c.k)), v(testing::ToBf16(c.v)), pos(c.token_pos), seq(c.token_seq),
        indptr(c.row_indptr), pages(c.row_pages), logical(c.row_logical) {}
  cuda::PagedAttentionParams Params(cuda::bf16* out) const {
    cuda::PagedAttentionParams p;
    p.q = q.get();
    p.out = out;
    p.kv = {k.get(), v.get(), nullptr, c.num_pages, c.hkv, c.ps, c.d};
    p.num_tokens = static_cast<int32_t>(c.token_pos.size());
    p.num_heads = c.heads;
    p.token_pos = pos.get();
    p.token_seq = seq.get();
    p.row_indptr = indptr.get();
    p.row_pages = pages.get();
    p.row_logical = logical.get();
    p.scale = Scale(c);
    return p;
  }
  const Case& c;
  DeviceArray<float> q;
  DeviceArray<cuda::bf16> k, v;
  DeviceArray<int32_t> pos, seq, indptr, pages, logical;
};

class AttentionParity : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionParity, MatchesCpuReference) {
  LIL_SKIP_WITHOUT_GPU();
  for (bool sparse : {false, true}) {
    const Case c = MakeCase(GetParam(), sparse, 7 + GetParam().page_size);
    std::vector<float> ref_mass;
    const std::vector<float> ref_out = CpuReference(c, &ref_mass);
    const DeviceCase dc(c);
    DeviceArray<float> mass(std::vector<float>(c.row_pages.size(), 0.0f));
    auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
    cuda::PagedAttentionParams p = dc.Params(out.get());
    p.page_mass = mass.get();
    ASSERT_EQ(cuda::PagedAttention(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), ref_out, 1e-2f, 1e-2f)) << "sparse=" << sparse;
    EXPECT_TRUE(AllClose(mass.Download(), ref_mass, 2e-3f, 2e-3f)) << "sparse=" << sparse;
  }
}

// The vectorized kernel (no page mass), unsplit and split-KV at every split count up to one
// entry per CTA, run twice each so a merge counter left non-zero would show.
TEST_P(AttentionParity, SplitKvMatchesCpuReference) {
  LIL_SKIP_WITHOUT_GPU();
  for (bool sparse : {false, true}) {
    const Case c = MakeCase(GetParam(), sparse, 11 + GetParam().page_size);
    const int32_t t = static_cast<int32_t>(c.token_pos.size());
    const std::vector<float> ref_out = CpuReference(c, nullptr);

    int32_t longest = 0;
    for (size_t r = 0; r + 1 < c.row_indptr.size(); ++r) longest = std::max(longest, c.row_indptr[r + 1] - c.row_indptr[r]);
    const DeviceCase dc(c);
    DeviceArray<int32_t> counters(std::vector<int32_t>(t * c.hkv, 0));
    DeviceArray<float> partial(std::vector<float>(cuda::SplitPartialFloats(t, c.hkv, c.d, std::max(4, std::min(longest, 128))), 0.0f));
    // (min_chunk, max_splits, long rows): unsplit, then every split count up to one entry per
    // CTA; last the long-row rule (PagedAttentionParams::long_chunk_entries 2, row_splits 2): 4
    // splits for rows of 4 x 2 entries or more, 2 for shorter ones.
    std::vector<std::tuple<int32_t, int32_t, bool>> splits = {{0, 1, false}};
    for (int32_t ms = 1; ms <= std::min(longest, 128); ++ms) splits.push_back({1, ms, false});
    splits.push_back({2, 3, false});
    splits.push_back({1, 4, true});
    // Both split kernels: CUDA cores (fp32 q) and tensor cores (q and P in bf16: the wider
    // tolerance of the flash prefill test below); the tensor-core kernel with its tiles through
    // cp.async (2 and 3 stages) and through registers (the default), in 4-warp CTAs and, last,
    // 8-warp ones (PagedAttentionParams::tc_warps, WideTcRows; split here too).
    const bool tc = cuda::TcDecodeSupported(c.d, c.heads / c.hkv);
    for (const auto& [min_chunk, max_splits, long_rows] : splits) {
      for (int rep = 0; rep < (tc ? 10 : 2); ++rep) {
        auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
        cuda::PagedAttentionParams p = dc.Params(out.get());
        p.rows_static = rep % 2 == 1;  // odd runs read the rows and prefetch before their wait
        p.tensor_cores = rep >= 2;
        p.tc_stages = rep >= 4 ? 3 : 2;
        p.tc_tiles = rep < 6 ? cuda::TcTiles::kCpAsync : cuda::TcTiles::kRegisters;
        p.tc_warps = rep >= 8 ? cuda::kWideWarps : cuda::kSplitWarps;
        if (min_chunk > 0) {
          p.min_chunk_entries = min_chunk;
          p.max_splits = max_splits;
          if (long_rows) {
            p.row_splits = 2;
            p.long_chunk_entries = 2;
          }
          p.partial = partial.get();
          p.counters = counters.get();
        }
        ASSERT_EQ(cuda::PagedAttention(p, nullptr), cudaSuccess);
        const float tol = p.tensor_cores ? 1.5e-2f : 1e-2f;
        EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), ref_out, tol, tol))
            << "sparse=" << sparse << " min_chunk=" << min_chunk << " max_splits=" << max_splits
            << " long_rows=" << long_rows << " rep=" << rep
            << " tc_stages=" << p.tc_stages << " tc_tiles=" << static_cast<int>(p.tc_tiles) << " tc_warps=" << p.tc_warps;
      }
    }
    for (int32_t n : counters.Download()) EXPECT_EQ(n, 0);
  }
}

// The tensor-core prefill kernel against the CPU reference: the three-sequence case (a chunk
// after cached pages, a decode token over a page list with holes, a short prompt) and a long
// one (a 200-token prompt and a 70-token chunk after 130 cached tokens: several query tiles and
// 64-key tiles, the causal edge inside a tile). Tolerance as above plus P rounded to bf16.
TEST_P(AttentionParity, FlashPrefillMatchesCpuReference) {
  LIL_SKIP_WITHOUT_GPU();
  const Shape shape = GetParam();
  ASSERT_TRUE(cuda::FlashPrefillSupported(shape.head_dim, shape.group));
  const std::vector<std::pair<int32_t, int32_t>> long_spans = {{0, 200}, {130, 70}};
  for (int variant = 0; variant < 3; ++variant) {
    const Case c = variant < 2 ? MakeCase(shape, variant == 1, 17 + shape.page_size)
                               : MakeCase(shape, false, 19 + shape.page_size, long_spans);
    const std::vector<float> ref_out = CpuReference(c, nullptr);
    const DeviceCase dc(c);
    const std::vector<int32_t> tiles = cuda::FlashPrefillTiles(c.token_seq, shape.group);
    DeviceArray<int32_t> dtiles(tiles);
    auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
    cuda::FlashPrefillParams fp;
    fp.attn = dc.Params(out.get());
    fp.tiles = dtiles.get();
    fp.num_tiles = static_cast<int32_t>(tiles.size() / 3);
    ASSERT_EQ(cuda::FlashPrefill(fp, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), ref_out, 1.5e-2f, 1.5e-2f)) << "case " << variant;
  }
}

// rows_per_seq (one page list a sequence, shared by its KV heads) gives bit-identical outputs
// to the same pages listed once per (sequence, KV head): the dense three-sequence case (one
// sequence with a freed page) and a long one, through the CUDA-core kernel and the
// tensor-core one, unsplit and split, and the flash prefill; page mass is refused with it.
TEST_P(AttentionParity, RowsPerSequenceMatchRowsPerHead) {
  LIL_SKIP_WITHOUT_GPU();
  const Shape shape = GetParam();
  for (int variant = 0; variant < 2; ++variant) {
    const Case c = variant == 0 ? MakeCase(shape, false, 23 + shape.page_size)
                                : MakeCase(shape, false, 29 + shape.page_size, {{0, 150}, {90, 40}});
    Case per_seq = c;  // head 0's row of each sequence (dense: every head's row is the same)
    per_seq.row_indptr = {0};
    per_seq.row_pages.clear();
    per_seq.row_logical.clear();
    const int32_t num_seqs = static_cast<int32_t>(c.row_indptr.size() - 1) / c.hkv;
    for (int32_t sq = 0; sq < num_seqs; ++sq) {
      const int32_t b = c.row_indptr[sq * c.hkv], e = c.row_indptr[sq * c.hkv + 1];
      for (int32_t h = 1; h < c.hkv; ++h) {
        ASSERT_EQ(c.row_indptr[sq * c.hkv + h + 1] - c.row_indptr[sq * c.hkv + h], e - b) << "dense rows differ";
      }
      per_seq.row_pages.insert(per_seq.row_pages.end(), c.row_pages.begin() + b, c.row_pages.begin() + e);
      per_seq.row_logical.insert(per_seq.row_logical.end(), c.row_logical.begin() + b, c.row_logical.begin() + e);
      per_seq.row_indptr.push_back(static_cast<int32_t>(per_seq.row_pages.size()));
    }
    const DeviceCase heads(c), seqs(per_seq);
    const int32_t t = static_cast<int32_t>(c.token_pos.size());
    DeviceArray<int32_t> counters(std::vector<int32_t>(t * c.hkv, 0));
    DeviceArray<float> partial(std::vector<float>(cuda::SplitPartialFloats(t, c.hkv, c.d, 3), 0.0f));
    const bool tc_ok = cuda::TcDecodeSupported(c.d, c.heads / c.hkv);
    for (int tc = 0; tc < (tc_ok ? 2 : 1); ++tc) {
      for (const bool split : {false, true}) {
        SCOPED_TRACE("case " + std::to_string(variant) + (tc ? " tensor cores" : " CUDA cores") + (split ? " split" : ""));
        auto run = [&](const DeviceCase& dc, bool rows_per_seq) {
          auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
          cuda::PagedAttentionParams p = dc.Params(out.get());
          p.rows_per_seq = rows_per_seq;
          p.tensor_cores = tc == 1;
          if (split) {
            p.min_chunk_entries = 1;
            p.max_splits = 3;
            p.partial = partial.get();
            p.counters = counters.get();
          }
          EXPECT_EQ(cuda::PagedAttention(p, nullptr), cudaSuccess);
          return testing::ToF32(out.Download());
        };
        EXPECT_TRUE(AllClose(run(seqs, true), run(heads, false), 0.0f, 0.0f));
      }
    }
    auto flash = [&](const DeviceCase& dc, bool rows_per_seq) {
      const std::vector<int32_t> tiles = cuda::FlashPrefillTiles(c.token_seq, shape.group);
      DeviceArray<int32_t> dtiles(tiles);
      auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
      cuda::FlashPrefillParams fp;
      fp.attn = dc.Params(out.get());
      fp.attn.rows_per_seq = rows_per_seq;
      fp.tiles = dtiles.get();
      fp.num_tiles = static_cast<int32_t>(tiles.size() / 3);
      EXPECT_EQ(cuda::FlashPrefill(fp, nullptr), cudaSuccess);
      return testing::ToF32(out.Download());
    };
    if (cuda::FlashPrefillSupported(shape.head_dim, shape.group)) {
      EXPECT_TRUE(AllClose(flash(seqs, true), flash(heads, false), 0.0f, 0.0f)) << "flash prefill, case " << variant;
    }
    DeviceArray<float> mass(std::vector<float>(per_seq.row_pages.size(), 0.0f));
    auto out = DeviceArray<cuda::bf16>::Poisoned(c.q.size());
    cuda::PagedAttentionParams p = seqs.Params(out.get());
    p.rows_per_seq = true;
    p.page_mass = mass.get();
    EXPECT_EQ(cuda::PagedAttention(p, nullptr), cudaErrorInvalidValue);
  }
}

TEST(AttentionSplit, FlashPrefillTilesCutEachSequenceRun) {
  // Tokens of sequences 4, 4, 4, 9, 2 x 70: group 4 -> 16 tokens a tile.
  std::vector<int32_t> seq = {4, 4, 4, 9};
  seq.insert(seq.end(), 70, 2);
  const std::vector<int32_t> want = {4, 0, 3, 9, 3, 1, 2, 4, 16, 2, 20, 16, 2, 36, 16, 2, 52, 16, 2, 68, 6};
  EXPECT_EQ(cuda::FlashPrefillTiles(seq, 4), want);
  EXPECT_FALSE(cuda::FlashPrefillSupported(32, 4));
  EXPECT_FALSE(cuda::FlashPrefillSupported(128, 3));
}

TEST(AttentionSplit, ChoosesSplitsThatFillWholeWaves) {
  // 132 SMs x 3 resident CTAs = 396. Batch 1 (8 rows): 43 splits (344 CTAs, the first count
  // within 85% of a full wave); batch 16 (128 rows): 3 splits (384 CTAs) rather than 4 (1.3
  // waves), 6 for long rows; batch 32 (256 rows): 3 splits (768 CTAs, 1.94 waves), 6 for long
  // rows; batch 128: no split.
  const cuda::SplitChoice a = cuda::ChooseSplit(8, 16, 396);
  EXPECT_EQ(a.min_chunk_entries, 4);  // 64 tokens
  EXPECT_EQ(a.max_splits, 43);
  EXPECT_EQ(a.long_chunk_entries, 0);  // 43 splits: no long-row rule
  // Batch 16 / 32: 3 splits a row, and rows of 6 x 256 pages (4,096 tokens a chunk) or more 6.
  for (int32_t rows : {128, 256}) {
    const cuda::SplitChoice b = cuda::ChooseSplit(rows, 16, 396);
    EXPECT_EQ(b.row_splits, 3) << rows;
    EXPECT_EQ(b.max_splits, 6) << rows;
    EXPECT_EQ(b.long_chunk_entries, 256) << rows;
  }
  EXPECT_EQ(cuda::ChooseSplit(1024, 16, 396).min_chunk_entries, 0);
  // Page size 1: a 64-entry floor; never more than 128 splits.
  EXPECT_EQ(cuda::ChooseSplit(8, 1, 396).min_chunk_entries, 64);
  EXPECT_LE(cuda::ChooseSplit(1, 16, 100000).max_splits, 128);
}

TEST(AttentionSplit, WideSplitTakesFewLongRowsInOneWave) {
  // Batch 1 x 8 KV heads on 132 SMs: 16 chunks of 8-warp CTAs (one wave) from 4,096 tokens,
  // chunks of at least 64 tokens, no long-row rule; at most 8 rows.
  const cuda::SplitChoice a = cuda::WideSplit(8, 4096, 16, 132);
  EXPECT_EQ(a.max_splits, 16);
  EXPECT_EQ(a.min_chunk_entries, 4);
  EXPECT_EQ(a.row_splits, 0);
  EXPECT_EQ(a.long_chunk_entries, 0);
  EXPECT_EQ(cuda::WideSplit(8, 4095, 16, 132).min_chunk_entries, 0);    // shorter rows: ChooseSplit's
  EXPECT_EQ(cuda::WideSplit(9, 32768, 16, 132).min_chunk_entries, 0);   // past kWideSplitMaxRows
  EXPECT_EQ(cuda::WideSplit(16, 32768, 16, 132).min_chunk_entries, 0);  // batch 2: ChooseSplit's
  EXPECT_EQ(cuda::WideSplit(4, 8192, 16, 132).max_splits, 33);          // TP=2's 4 rows
  EXPECT_EQ(cuda::WideSplit(8, 8192, 1, 132).min_chunk_entries, 64);    // one-token pages
  EXPECT_EQ(cuda::WideSplit(1, 8192, 16, 1000).max_splits, 128);        // at most kMaxSplits
  EXPECT_EQ(cuda::WideSplit(8, 8192, 16, 15).min_chunk_entries, 0);     // under 2 chunks a row
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionParity,
                         ::testing::Values(Shape{1, 1, 64}, Shape{3, 4, 128}, Shape{16, 8, 64},
                                           Shape{17, 4, 64}, Shape{16, 1, 128}, Shape{3, 8, 128},
                                           Shape{17, 8, 128}, Shape{1, 4, 128}),
                         [](const auto& info) {
                           return "ps" + std::to_string(info.param.page_size) + "_g" +
                                  std::to_string(info.param.group) + "_d" + std::to_string(info.param.head_dim);
                         });

TEST(AttentionParity, RejectsUnsupportedGroup) {
  LIL_SKIP_WITHOUT_GPU();
  cuda::PagedAttentionParams p;
  p.num_tokens = 1;
  p.num_heads = 32;
  p.kv.num_kv_heads = 2;  // group 16
  p.kv.head_dim = 64;
  EXPECT_EQ(cuda::PagedAttention(p, nullptr), cudaErrorInvalidValue);
}

// Quest: 2 sequences (odd candidate counts, one with a hole), scores per KV head from the
// min/max metadata, budget below and above the candidate count.
class QuestParity : public ::testing::TestWithParam<Shape> {};

TEST_P(QuestParity, MatchesCpuReference) {
  LIL_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  // Eight KV heads at group 1 / head_dim 128 (a candidate's metadata block is 4 KiB in bf16, as
  // for Llama-3-8B), two elsewhere.
  const int32_t hkv = s.group == 1 && s.head_dim == 128 ? 8 : 2, heads = hkv * s.group, d = s.head_dim,
                num_pages = 2400;
  // 600: three chunks of the split scoring; 2,300: runs of 5 keys a selection thread, past the
  // 4 it holds in registers, so its threshold search walks the keys in shared memory; budget 1:
  // the newest page alone (no threshold search).
  const std::vector<int32_t> counts = {37, 5, 250, 600, 2300, 40};
  const std::vector<int32_t> budget = {6, 9, 64, 100, 300, 1};
  std::vector<int32_t> cand_indptr{0}, cand_pages, cand_logical;
  std::mt19937 rng(s.page_size * 31 + s.group);
  for (int32_t n : counts) {
    std::vector<int32_t> perm(num_pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int32_t i = 0; i < n; ++i) {
      cand_pages.push_back(perm[i]);
      cand_logical.push_back(2 * i + (i > 3 ? 1 : 0));  // ascending, with gaps
    }
    cand_indptr.push_back(static_cast<int32_t>(cand_pages.size()));
  }
  const int32_t num_seqs = static_cast<int32_t>(counts.size());
  // Metadata: bf16 min <= max per element; a few exact ties between pages.
  std::vector<float> meta(static_cast<size_t>(num_pages) * hkv * 2 * d);
  const auto a = testing::RandomBf16Values(meta.size(), 11), b = testing::RandomBf16Values(meta.size(), 12);
  for (size_t page_head = 0; page_head < meta.size() / (2 * d); ++page_head) {
    for (int32_t i = 0; i < d; ++i) {
      const size_t o = page_head * 2 * d;
      meta[o + i] = std::min(a[o + i], b[o + i]);
      meta[o + d + i] = std::max(a[o + i], b[o + i]);
    }
  }
  for (int32_t i = 0; i < 2 * d * hkv; ++i) meta[5 * 2 * d * hkv + i] = meta[7 * 2 * d * hkv + i];
  // The same metadata in e4m3, rounded outward (kv.quest_fp8), and its values for the CPU.
  std::vector<uint8_t> meta8(meta.size());
  std::vector<float> meta8_values(meta.size());
  for (size_t page_head = 0; page_head < meta.size() / (2 * d); ++page_head) {
    for (int32_t i = 0; i < 2 * d; ++i) {
      const size_t o = page_head * 2 * d + i;
      meta8[o] = i < d ? E4m3RoundDown(meta[o]) : E4m3RoundUp(meta[o]);
      meta8_values[o] = E4m3ToFloat(meta8[o]);
    }
  }
  const auto q = testing::RandomBf16Values(static_cast<size_t>(num_seqs) * heads * d, 13);
  size_t cap = 0;
  for (int32_t i = 0; i < num_seqs; ++i) cap += hkv * std::min(counts[i], budget[i]);
  std::vector<int32_t> q_row(num_seqs), cand_count(num_seqs);
  std::iota(q_row.begin(), q_row.end(), 0);
  for (int32_t i = 0; i < num_seqs; ++i) cand_count[i] = counts[i];
  DeviceArray<float> dq(q);
  DeviceArray<cuda::bf16> dmeta(testing::ToBf16(meta));
  DeviceArray<uint8_t> dmeta8(meta8);
  DeviceArray<int32_t> dq_row(q_row), dbegin(std::vector<int32_t>(cand_indptr.begin(), cand_indptr.end() - 1)),
      dcount(cand_count), dpages(cand_pages), dlogical(cand_logical), dbudget(budget);
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "e4m3 metadata" : "bf16 metadata");
    std::vector<int32_t> ref_indptr(num_seqs * hkv + 1), ref_pages(cap), ref_logical(cap);
    cpu::QuestSelectParams rp;
    rp.q = q.data();
    rp.kv = {nullptr, nullptr, fp8 ? meta8_values.data() : meta.data(), num_pages, hkv, s.page_size, d};
    rp.num_seqs = num_seqs;
    rp.num_heads = heads;
    rp.cand_indptr = cand_indptr.data();
    rp.cand_pages = cand_pages.data();
    rp.cand_logical = cand_logical.data();
    rp.budget_pages = budget.data();
    rp.out_indptr = ref_indptr.data();
    rp.out_pages = ref_pages.data();
    rp.out_logical = ref_logical.data();
    cpu::QuestSelect(rp);

    DeviceArray<int32_t> dout_begin(std::vector<int32_t>(ref_indptr.begin(), ref_indptr.end() - 1));
    auto out_pages = DeviceArray<int32_t>::Poisoned(cap), out_logical = DeviceArray<int32_t>::Poisoned(cap);
    cuda::QuestSelectParams p;
    p.q = dq.get();
    p.kv = {nullptr, nullptr, fp8 ? nullptr : dmeta.get(), num_pages, hkv, s.page_size, d, fp8 ? dmeta8.get() : nullptr};
    p.num_seqs = num_seqs;
    p.num_heads = heads;
    p.q_row = dq_row.get();
    p.cand_begin = dbegin.get();
    p.cand_count = dcount.get();
    p.cand_pages = dpages.get();
    p.cand_logical = dlogical.get();
    p.budget_pages = dbudget.get();
    p.out_begin = dout_begin.get();
    p.out_pages = out_pages.get();
    p.out_logical = out_logical.get();
    ASSERT_EQ(cuda::QuestSelect(p, nullptr), cudaSuccess);
    // Scores are the same bound summed another way (the GPU folds the group first): compare
    // the selections, which must be identical unless two pages score within rounding.
    EXPECT_EQ(out_pages.Download(), ref_pages);
    EXPECT_EQ(out_logical.Download(), ref_logical);
    // The scoring in its own kernel (keys through global memory): the same selection.
    const int32_t stride = *std::max_element(counts.begin(), counts.end());
    auto keys = DeviceArray<uint32_t>::Poisoned(static_cast<size_t>(num_seqs) * hkv * stride);
    p.keys = keys.get();
    p.key_stride = stride;
    // Chunks: one wave's worth (here 64 candidates a CTA, 8 a warp), and 512 (64 a warp: the
    // staged pipeline crosses from one group of 32 page ids to the next).
    for (int32_t chunk : {0, 512}) {
      for (bool staged : {true, false}) {  // head_dim 128: metadata through shared memory, or registers
        auto split_pages = DeviceArray<int32_t>::Poisoned(cap), split_logical = DeviceArray<int32_t>::Poisoned(cap);
        p.out_pages = split_pages.get();
        p.out_logical = split_logical.get();
        p.score_staged = staged;
        p.score_chunk = chunk;
        ASSERT_EQ(cuda::QuestSelect(p, nullptr), cudaSuccess);
        EXPECT_EQ(split_pages.Download(), ref_pages) << "split scoring, staged " << staged << ", chunk " << chunk;
        EXPECT_EQ(split_logical.Download(), ref_logical) << "split scoring, staged " << staged << ", chunk " << chunk;
      }
    }
    // The L2 prefetch of the attention's first entries a chunk (prefetch_entries, the backend's
    // QuestPrefetchEntries): real K / V pools to send (an address past them faults) and the
    // same selection. Chunks of at least 8 entries in up to 4 splits, the first 4 of each sent.
    const size_t pool = static_cast<size_t>(num_pages) * hkv * s.page_size * d;
    const std::vector<cuda::bf16> zeros(pool);
    DeviceArray<cuda::bf16> dk(zeros), dv(zeros);
    p.kv.k = dk.get();
    p.kv.v = dv.get();
    p.attend_split = {8, 4, 0, 0};
    p.prefetch_entries = 4;
    p.score_chunk = 0;
    p.score_staged = true;
    for (bool split : {false, true}) {
      auto pf_pages = DeviceArray<int32_t>::Poisoned(cap), pf_logical = DeviceArray<int32_t>::Poisoned(cap);
      p.out_pages = pf_pages.get();
      p.out_logical = pf_logical.get();
      p.keys = split ? keys.get() : nullptr;
      ASSERT_EQ(cuda::QuestSelect(p, nullptr), cudaSuccess);
      EXPECT_EQ(pf_pages.Download(), ref_pages) << "with the L2 prefetch, split scoring " << split;
      EXPECT_EQ(pf_logical.Download(), ref_logical) << "with the L2 prefetch, split scoring " << split;
    }
  }
  // Exactly one of quest / quest_fp8 must be set.
  cuda::QuestSelectParams both;
  both.num_seqs = 1;
  both.num_heads = heads;
  both.kv = {nullptr, nullptr, dmeta.get(), num_pages, hkv, s.page_size, d, dmeta8.get()};
  EXPECT_EQ(cuda::QuestSelect(both, nullptr), cudaErrorInvalidValue);
}

// The backend's choice between the two scoring paths (both checked against the CPU above):
// bf16 rows that fill one wave of selection CTAs score in them, anything else is split.
TEST(QuestSplitRule, OneWaveOfBf16RowsScoresInTheSelectionCtas) {
  LIL_SKIP_WITHOUT_GPU();
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  EXPECT_FALSE(cuda::QuestSplitScoringPays(sms, false));
  EXPECT_FALSE(cuda::QuestSplitScoringPays((9 * sms + 9) / 10, false));
  EXPECT_TRUE(cuda::QuestSplitScoringPays(sms, true));       // e4m3
  EXPECT_TRUE(cuda::QuestSplitScoringPays(sms + 1, false));  // a second wave of whole rows
  EXPECT_TRUE(cuda::QuestSplitScoringPays(sms / 2, false));  // half the SMs idle
  EXPECT_TRUE(cuda::QuestSplitScoringPays(1, false));
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuestParity,
                         ::testing::Values(Shape{16, 4, 128}, Shape{16, 1, 128}, Shape{3, 1, 64}, Shape{17, 8, 64}),
                         [](const auto& info) {
                           return "ps" + std::to_string(info.param.page_size) + "_g" +
                                  std::to_string(info.param.group) + "_d" + std::to_string(info.param.head_dim);
                         });

}  // namespace
}  // namespace lil
