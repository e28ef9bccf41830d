// File: tests/engine/parallel/communicator_test.cc
// The in-process Communicator with 1..4 ranks on threads: results of every collective,
// bitwise-identical rank-ordered sums, agreement checks failing on every rank at once,
// abort waking waiting ranks, misuse from two threads; a group whose waiting ranks poll
// before they sleep (InProcessGroup::Create spin_micros).
#include "engine/parallel/communicator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lil {
namespace {

// Runs fn(rank, comm) on one thread per rank of a fresh group; returns each rank's status.
std::vector<absl::Status> RunRanks(int32_t world,
                                   const std::function<absl::Status(int32_t, Communicator&)>& fn) {
  auto comms = InProcessGroup::CreateCommunicators(world);
  EXPECT_TRUE(comms.ok()) << comms.status();
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] { status[r] = fn(r, *(*comms)[r]); });
  }
  for (auto& t : threads) t.join();
  return status;
}

// Values spread over many magnitudes and signs, so a different summation order changes bits.
std::vector<float> Spread(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exp(-20, 20);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(mant(rng), exp(rng));
  return v;
}

class WorldTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(WorldTest, AllReduceSumIsTheRankOrderedSumBitwiseOnEveryRank) {
  const int32_t world = GetParam();
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{4096}}) {
    std::vector<std::vector<float>> in(world), out(world);
    for (int32_t r = 0; r < world; ++r) in[r] = out[r] = Spread(n, 100 * n + r);
    // The reference: ((r0 + r1) + r2) + r3, and the reverse order to show order matters.
    std::vector<float> ref = in[0], reverse = in[world - 1];
    for (int32_t r = 1; r < world; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        ref[i] += in[r][i];
        reverse[i] += in[world - 1 - r][i];
      }
    }
    auto status = RunRanks(world, [&](int32_t r, Communicator& c) {
      for (int rep = 0; rep < 3; ++rep) {  // repeated: every round must give the same bits
        out[r] = in[r];
        absl::Status s = c.AllReduceSum(out[r].data(), n);
        if (!s.ok()) return s;
        if (n > 0 && std::memcmp(out[r].data(), ref.data(), sizeof(float) * n) != 0) {
          return absl::InternalError(
              absl::StrCat("rank ", r, " differs from the rank-ordered sum"));
        }
      }
      return absl::OkStatus();
    });
    for (int32_t r = 0; r < world; ++r)
      EXPECT_TRUE(status[r].ok()) << "n " << n << ": " << status[r];
    if (world >= 3 && n == 4096) {
      EXPECT_NE(std::memcmp(ref.data(), reverse.data(), sizeof(float) * n), 0)
          << "inputs do not detect the summation order";
    }
  }
}

TEST_P(WorldTest, AllGatherIsRankMajorAndAllowsInPlace) {
  const int32_t world = GetParam();
  const int64_t n = 33;
  auto status = RunRanks(world, [&](int32_t r, Communicator& c) -> absl::Status {
    std::vector<float> in(n), out(world * n, -1.0f);
    for (int64_t i = 0; i < n; ++i) in[i] = 1000.0f * r + i;
    absl::Status s = c.AllGather(in.data(), n, out.data());
    if (!s.ok()) return s;
    // In place: this rank's input already sits in its slot of the output.
    std::vector<float> inplace(world * n, -1.0f);
    std::copy(in.begin(), in.end(), inplace.begin() + r * n);
    s = c.AllGather(inplace.data() + r * n, n, inplace.data());
    if (!s.ok()) return s;
    for (int32_t src = 0; src < world; ++src) {
      for (int64_t i = 0; i < n; ++i) {
        const float want = 1000.0f * src + i;
        if (out[src * n + i] != want || inplace[src * n + i] != want) {
          return absl::InternalError(absl::StrCat("rank ", r, " slot ", src, "[", i, "] wrong"));
        }
      }
    }
    return absl::OkStatus();
  });
  for (int32_t r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << status[r];
}

TEST_P(WorldTest, BroadcastFromEveryRoot) {
  const int32_t world = GetParam();
  auto status = RunRanks(world, [&](int32_t r, Communicator& c) -> absl::Status {
    for (int32_t root = 0; root < world; ++root) {
      char buf[24];
      std::snprintf(buf, sizeof(buf), "from rank %d", r);
      absl::Status s = c.Broadcast(buf, sizeof(buf), root);
      if (!s.ok()) return s;
      char want[24];
      std::snprintf(want, sizeof(want), "from rank %d", root);
      if (std::strcmp(buf, want) != 0)
        return absl::InternalError(absl::StrCat("rank ", r, " got ", buf));
    }
    return c.Broadcast(nullptr, 0, 0);  // empty is fine
  });
  for (int32_t r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << status[r];
}

TEST_P(WorldTest, BarrierOrdersRounds) {
  const int32_t world = GetParam();
  std::atomic<int32_t> arrived{0};
  auto status = RunRanks(world, [&](int32_t r, Communicator& c) -> absl::Status {
    for (int round = 1; round <= 50; ++round) {
      arrived.fetch_add(1);
      absl::Status s = c.Barrier();
      if (!s.ok()) return s;
      // Everyone of this round has arrived, nobody can have started the next one's add...
      const int32_t seen = arrived.load();
      if (seen < round * world)
        return absl::InternalError(absl::StrCat("round ", round, " saw ", seen));
      s = c.Barrier();  // ...until all have looked.
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
  for (int32_t r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << status[r];
}

// Many mixed collectives of random sizes in the same order on every rank: no deadlock,
// results right.
TEST_P(WorldTest, MixedCollectivesStress) {
  const int32_t world = GetParam();
  auto status = RunRanks(world, [&](int32_t r, Communicator& c) -> absl::Status {
    std::mt19937 rng(7);  // same sequence of ops and sizes on every rank
    for (int i = 0; i < 300; ++i) {
      const int64_t n = rng() % 50;
      absl::Status s;
      std::vector<float> a(n, static_cast<float>(r + 1)), out(n * world);
      switch (rng() % 3) {
        case 0:
          s = c.AllReduceSum(a.data(), n);
          for (float x : a) {
            if (x != world * (world + 1) / 2) return absl::InternalError("bad sum");
          }
          break;
        case 1:
          s = c.AllGather(a.data(), n, out.data());
          for (int64_t j = 0; j < n * world; ++j) {
            if (out[j] != static_cast<float>(j / std::max<int64_t>(n, 1) + 1))
              return absl::InternalError("bad gather");
          }
          break;
        default:
          s = c.Broadcast(a.data(), n * 4, static_cast<int32_t>(i % world));
          for (float x : a) {
            if (x != static_cast<float>(i % world + 1)) return absl::InternalError("bad broadcast");
          }
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
  for (int32_t r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << status[r];
}

INSTANTIATE_TEST_SUITE_P(Worlds, WorldTest, ::testing::Values(1, 2, 3, 4));

// A rank that passes another size fails the collective on every rank, with one message
// naming the ranks and sizes; the group stays usable afterwards.
TEST(CommunicatorTest, SizeMismatchFailsOnEveryRankAndGroupRecovers) {
  for (int32_t world : {2, 3, 4}) {
    std::vector<std::string> messages(world);
    auto status = RunRanks(world, [&](int32_t r, Communicator& c) -> absl::Status {
      std::vector<float> buf(9, 1.0f);
      const int64_t n = r == world - 1 ? 9 : 8;
      absl::Status s = c.AllReduceSum(buf.data(), n);
      messages[r] = std::string(s.message());
      if (s.code() != absl::StatusCode::kInvalidArgument)
        return absl::InternalError(absl::StrCat("got ", s.ToString()));
      if (buf[0] != 1.0f) return absl::InternalError("a failed collective moved data");
      s = c.AllReduceSum(buf.data(), 8);
      if (!s.ok()) return s;
      return buf[0] == static_cast<float>(world) ? absl::OkStatus()
                                                 : absl::InternalError("bad sum after error");
    });
    for (int32_t r = 0; r < world; ++r) {
      EXPECT_TRUE(status[r].ok()) << status[r];
      EXPECT_EQ(
          messages[r],
          absl::StrCat("AllReduceSum: ranks disagree on the element count: rank 0 has 8, rank ",
                       world - 1, " has 9"));
    }
  }
}

TEST(CommunicatorTest, DisagreementsAreInvalidArgumentsOnEveryRank) {
  struct Case {
    std::string want;  // substring of the message
    std::function<absl::Status(int32_t, Communicator&)> call;
  };
  std::vector<float> big(64, 0.0f);
  const std::vector<Case> cases = {
      {"collective mismatch: rank 0 called AllReduceSum, rank 1 called AllGather",
       [&](int32_t r, Communicator& c) {
         std::vector<float> a(4), out(8);
         return r == 0 ? c.AllReduceSum(a.data(), 4) : c.AllGather(a.data(), 4, out.data());
       }},
      {"AllGather: ranks disagree on the element count: rank 0 has 4, rank 1 has 5",
       [&](int32_t r, Communicator& c) {
         std::vector<float> a(5), out(10);
         return c.AllGather(a.data(), r == 0 ? 4 : 5, out.data());
       }},
      {"Broadcast: ranks disagree on the root: rank 0 names 0, rank 1 names 1",
       [&](int32_t r, Communicator& c) {
         char b[4] = {};
         return c.Broadcast(b, 4, r);
       }},
      {"Broadcast: rank 0 names root 2, outside [0, 2)",
       [&](int32_t, Communicator& c) {
         char b[4] = {};
         return c.Broadcast(b, 4, 2);
       }},
      {"AllReduceSum: rank 0 passed a negative element count -1",
       [&](int32_t, Communicator& c) { return c.AllReduceSum(big.data(), -1); }},
      {"AllReduceSum: rank 1 passed a null buffer for 3 elements",
       [&](int32_t r, Communicator& c) {
         return c.AllReduceSum(r == 0 ? big.data() + 8 * r : nullptr, 3);
       }},
  };
  for (const Case& tc : cases) {
    auto status = RunRanks(2, tc.call);
    for (int32_t r = 0; r < 2; ++r) {
      EXPECT_EQ(status[r].code(), absl::StatusCode::kInvalidArgument)
          << tc.want << ": " << status[r];
      EXPECT_NE(status[r].message().find(tc.want), std::string::npos) << status[r];
    }
  }
}

TEST(CommunicatorTest, AbortWakesWaitingRanksAndFailsLaterCalls) {
  auto group = InProcessGroup::Create(3);
  ASSERT_TRUE(group.ok());
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int32_t r = 0; r < 3; ++r) comms.push_back(*(*group)->ForRank(r));
  std::vector<absl::Status> status(2);
  std::vector<std::thread> waiting;
  for (int32_t r = 0; r < 2; ++r) waiting.emplace_back([&, r] { status[r] = comms[r]->Barrier(); });
  (*group)->Abort(absl::UnavailableError("rank 2 died"));  // rank 2 never arrives
  for (auto& t : waiting) t.join();
  for (const absl::Status& s : status) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(s.message(), "tensor-parallel group aborted: rank 2 died");
  }
  float x = 1.0f;
  EXPECT_EQ(comms[2]->AllReduceSum(&x, 1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*group)->aborted().code(), absl::StatusCode::kUnavailable);
}

// A group whose waiting ranks poll before they sleep (spin_micros): rounds back to back
// with every rank late now and then, by less than the spin (the poll sees the round end)
// and by more (the rank has gone to sleep and is woken), give the results of the sleeping
// group; an abort ends a spin far shorter than the spin's limit.
TEST(CommunicatorTest, SpinningRanksGiveTheSameResults) {
  constexpr int32_t kWorld = 3;
  auto group = InProcessGroup::Create(kWorld, /*spin_micros=*/50);
  ASSERT_TRUE(group.ok());
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int32_t r = 0; r < kWorld; ++r) comms.push_back(*(*group)->ForRank(r));
  std::vector<absl::Status> status(kWorld);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      status[r] = [&]() -> absl::Status {
        for (int round = 0; round < 300; ++round) {
          if ((round + r) % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(round % 2 ? 10 : 200));
          int64_t word = r == 0 ? 1000 + round : -1;
          LIL_RETURN_IF_ERROR(comms[r]->Broadcast(&word, sizeof(word), 0));
          if (word != 1000 + round) return absl::InternalError(absl::StrCat("broadcast got ", word));
          float x = static_cast<float>(r + round);
          LIL_RETURN_IF_ERROR(comms[r]->AllReduceSum(&x, 1));
          if (x != static_cast<float>(3 * round + 3)) return absl::InternalError(absl::StrCat("sum got ", x));
        }
        return absl::OkStatus();
      }();
    });
  }
  for (auto& t : threads) t.join();
  for (int32_t r = 0; r < kWorld; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];

  auto slow = InProcessGroup::Create(2, /*spin_micros=*/int64_t{60} * 1000 * 1000);
  ASSERT_TRUE(slow.ok());
  auto lone = (*slow)->ForRank(0);
  ASSERT_TRUE(lone.ok());
  absl::Status waited;
  const auto start = std::chrono::steady_clock::now();
  std::thread w([&] { waited = (*lone)->Barrier(); });  // rank 1 never comes
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  (*slow)->Abort(absl::UnavailableError("rank 1 died"));
  w.join();
  EXPECT_EQ(waited.code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(CommunicatorTest, OneRankFromTwoThreadsIsAnError) {
  auto group = InProcessGroup::Create(2);
  ASSERT_TRUE(group.ok());
  auto rank0 = (*group)->ForRank(0);
  ASSERT_TRUE(rank0.ok());
  Communicator& c = **rank0;
  absl::Status first, second;
  // Rank 1 never comes: whichever of the two calls enters second finds rank 0 already
  // waiting; both end with the same error.
  std::thread a([&] { first = c.Barrier(); });
  second = c.Barrier();
  a.join();
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.message().find("used from two threads"), std::string::npos) << second;
  EXPECT_EQ(first, second);
}

TEST(CommunicatorTest, BadWorldAndRankAreErrors) {
  EXPECT_EQ(InProcessGroup::Create(0).status().code(), absl::StatusCode::kInvalidArgument);
  auto group = InProcessGroup::Create(2);
  ASSERT_TRUE(group.ok());
  auto c = (*group)->ForRank(2);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(), "rank 2 is outside the group's [0, 2)");
}

}  // namespace
}  // namespace lil
