// File: tests/testing/deflate_reference.cc
#include "tests/testing/deflate_reference.h"

#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

namespace lil::testing {

int64_t WholeRawDeflateSize(const std::string& text) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<unsigned char> out(deflateBound(&s, text.size()) + 16);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  s.avail_in = text.size();
  s.next_out = out.data();
  s.avail_out = out.size();
  EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
  const int64_t size = s.total_out;
  deflateEnd(&s);
  return size;
}

}  // namespace lil::testing
