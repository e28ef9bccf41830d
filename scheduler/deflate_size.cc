// File: scheduler/deflate_size.cc
// Raw DEFLATE stream sizes with a reusable zlib state (see deflate_size.h).
#include "scheduler/deflate_size.h"

#include <algorithm>
#include <limits>

#include "common/status.h"

namespace lil {
namespace {

constexpr int kLevel = 6;
constexpr int kRawWindowBits = -15;  // negative: raw deflate, no zlib header or checksum
constexpr int kMemLevel = 8;

absl::Status ZlibError(const char* what, int code, const z_stream& s) {
  return absl::InternalError(absl::StrCat("zlib ", what, " failed with code ", code, ": ",
                                          s.msg != nullptr ? s.msg : "(no message)"));
}

}  // namespace

DeflateSizer::~DeflateSizer() {
  if (initialized_) deflateEnd(&stream_);
}

DeflateSizer& DeflateSizer::ThreadLocal() {
  thread_local DeflateSizer sizer;
  return sizer;
}

absl::Status DeflateSizer::Start() {
  if (initialized_) {
    int rc = deflateReset(&stream_);
    if (rc != Z_OK) return ZlibError("deflateReset", rc, stream_);
    return absl::OkStatus();
  }
  stream_ = z_stream{};
  int rc = deflateInit2(&stream_, kLevel, Z_DEFLATED, kRawWindowBits, kMemLevel,
                        Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) return ZlibError("deflateInit2", rc, stream_);
  initialized_ = true;
  return absl::OkStatus();
}

absl::Status DeflateSizer::Feed(z_stream& s, std::string_view text) {
  // avail_in is 32-bit: feed very long texts in slices.
  constexpr size_t kMaxSlice = std::numeric_limits<uInt>::max() / 2;
  while (!text.empty()) {
    size_t n = std::min(text.size(), kMaxSlice);
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    s.avail_in = static_cast<uInt>(n);
    while (s.avail_in > 0) {
      s.next_out = out_;
      s.avail_out = sizeof(out_);
      int rc = deflate(&s, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) return ZlibError("deflate", rc, s);
    }
    text.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DeflateSizer::Finish(z_stream& s) {
  s.next_in = nullptr;
  s.avail_in = 0;
  for (;;) {
    s.next_out = out_;
    s.avail_out = sizeof(out_);
    int rc = deflate(&s, Z_FINISH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return ZlibError("deflate(Z_FINISH)", rc, s);
  }
  return static_cast<int64_t>(s.total_out);
}

absl::StatusOr<int64_t> DeflateSizer::Size(std::string_view text) {
  LIL_RETURN_IF_ERROR(Start());
  LIL_RETURN_IF_ERROR(Feed(stream_, text));
  return Finish(stream_);
}

absl::StatusOr<DeflatePairSizes> DeflateSizer::PairSizes(std::string_view prefix,
                                                         std::string_view suffix) {
  LIL_RETURN_IF_ERROR(Start());
  LIL_RETURN_IF_ERROR(Feed(stream_, prefix));
  z_stream fork{};
  int rc = deflateCopy(&fork, &stream_);
  if (rc != Z_OK) return ZlibError("deflateCopy", rc, stream_);
  absl::StatusOr<int64_t> prefix_bytes = Finish(fork);
  deflateEnd(&fork);
  if (!prefix_bytes.ok()) return prefix_bytes.status();
  LIL_RETURN_IF_ERROR(Feed(stream_, suffix));
  LIL_ASSIGN_OR_RETURN(int64_t whole_bytes, Finish(stream_));
  return DeflatePairSizes{*prefix_bytes, whole_bytes};
}

}  // namespace lil
