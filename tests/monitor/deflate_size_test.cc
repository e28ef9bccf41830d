// File: tests/monitor/deflate_size_test.cc
// DeflateSizer against a one-shot zlib compression written here, and PairSizes (the
// deflateCopy fork) against two separate compressions.
#include "scheduler/deflate_size.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/deflate_reference.h"
#include <zlib.h>

namespace lil {
namespace {

int64_t OneShotRawDeflateSize(const std::string& text) { return testing::WholeRawDeflateSize(text); }

std::string RandomText(std::mt19937_64& rng, size_t n, int alphabet) {
  std::string s(n, ' ');
  for (char& c : s) c = static_cast<char>('a' + rng() % alphabet);
  return s;
}

TEST(DeflateSizeTest, MatchesPythonZlibSizes) {
  // zlib.compressobj(6, zlib.DEFLATED, -15): b'' -> 2 bytes, b'hello hello hello hello\n' -> 11.
  DeflateSizer sizer;
  EXPECT_EQ(sizer.Size("").value(), 2);
  EXPECT_EQ(sizer.Size("hello hello hello hello\n").value(), 11);
}

TEST(DeflateSizeTest, SizeMatchesOneShotCompression) {
  std::mt19937_64 rng(7);
  DeflateSizer sizer;
  for (size_t n : {1, 100, 20'000, 70'000, 200'000}) {
    for (int alphabet : {2, 26, 200}) {
      std::string text = RandomText(rng, n, alphabet);
      EXPECT_EQ(sizer.Size(text).value(), OneShotRawDeflateSize(text))
          << "n=" << n << " alphabet=" << alphabet;
    }
  }
}

TEST(DeflateSizeTest, PairSizesEqualSeparateCompressions) {
  std::mt19937_64 rng(11);
  DeflateSizer sizer;
  // Lengths around zlib's internal sizes: the 32 KiB window, the 64 KiB buffer it slides,
  // and the 16K-symbol block buffer.
  const std::vector<size_t> prefix_sizes = {0, 1, 258, 32'767, 32'768, 32'769, 40'000, 65'536,
                                            100'000};
  const std::vector<size_t> suffix_sizes = {0, 1, 300, 1'000, 5'000, 40'000};
  for (size_t p : prefix_sizes) {
    for (size_t q : suffix_sizes) {
      int alphabet = 2 + static_cast<int>(rng() % 30);
      std::string prefix = RandomText(rng, p, alphabet);
      // Half the suffixes repeat the prefix's tail so matches cross the seam.
      std::string suffix = (rng() % 2 == 0 || p == 0)
                               ? RandomText(rng, q, alphabet)
                               : prefix.substr(p - std::min(p, q)) + RandomText(rng, q / 2, 3);
      DeflatePairSizes sizes = sizer.PairSizes(prefix, suffix).value();
      EXPECT_EQ(sizes.prefix_bytes, OneShotRawDeflateSize(prefix)) << "p=" << p << " q=" << q;
      EXPECT_EQ(sizes.whole_bytes, OneShotRawDeflateSize(prefix + suffix))
          << "p=" << p << " q=" << q;
    }
  }
}

TEST(DeflateSizeTest, ThreadLocalSizerIsReusable) {
  DeflateSizer& a = DeflateSizer::ThreadLocal();
  EXPECT_EQ(&a, &DeflateSizer::ThreadLocal());
  std::string text(50'000, 'x');
  int64_t first = a.Size(text).value();
  EXPECT_EQ(a.PairSizes("abc", "def").value().whole_bytes, OneShotRawDeflateSize("abcdef"));
  EXPECT_EQ(a.Size(text).value(), first);
}

TEST(DeflateStreamTest, FinishedSizeEqualsOneShotOfEverythingAppended) {
  std::mt19937_64 rng(13);
  DeflateStream stream;
  EXPECT_EQ(stream.FinishedSize().value(), 2);  // empty stream, as Python's zlib says
  std::string all;
  // Random appends of 0..3000 bytes, with repeats of earlier text so matches reach back,
  // read at ~150 points through ~250 KB (past the window, the 64 KiB slide and several
  // 16K-symbol blocks).
  for (int i = 0; i < 150; ++i) {
    std::string piece;
    size_t n = rng() % 3000;
    if (rng() % 3 == 0 && all.size() > n) {
      piece = all.substr(rng() % (all.size() - n), n);
    } else {
      piece = RandomText(rng, n, 2 + static_cast<int>(rng() % 40));
    }
    ASSERT_TRUE(stream.Append(piece).ok());
    all += piece;
    ASSERT_EQ(stream.FinishedSize().value(), OneShotRawDeflateSize(all)) << "at " << all.size();
  }
}

TEST(DeflateStreamTest, CopiesAreIndependent) {
  DeflateStream a;
  ASSERT_TRUE(a.Append("the first part of the text, ").ok());
  DeflateStream b = a;
  ASSERT_TRUE(a.Append("then one ending").ok());
  ASSERT_TRUE(b.Append("then another, longer ending").ok());
  EXPECT_EQ(a.FinishedSize().value(),
            OneShotRawDeflateSize("the first part of the text, then one ending"));
  EXPECT_EQ(b.FinishedSize().value(),
            OneShotRawDeflateSize("the first part of the text, then another, longer ending"));
  DeflateStream empty;
  b = empty;  // copying a never-started stream gives an empty one
  EXPECT_EQ(b.FinishedSize().value(), 2);
}

}  // namespace
}  // namespace lil
