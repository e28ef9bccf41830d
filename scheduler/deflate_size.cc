// File: scheduler/deflate_size.cc
// Raw DEFLATE stream sizes with reusable zlib states (see deflate_size.h).
#include "scheduler/deflate_size.h"

#include <algorithm>
#include <limits>

#include "common/status.h"

namespace lil {
namespace {

constexpr int kLevel = 6;
constexpr int kRawWindowBits = -15;  // negative: raw deflate, no zlib header or checksum
constexpr int kMemLevel = 8;

// Compressed bytes are only counted (total_out), so they all land in one scratch buffer.
unsigned char* ScratchOut() {
  thread_local unsigned char out[16 * 1024];
  return out;
}
constexpr uInt kScratchBytes = 16 * 1024;

absl::Status ZlibError(const char* what, int code, const z_stream& s) {
  return absl::InternalError(absl::StrCat("zlib ", what, " failed with code ", code, ": ",
                                          s.msg != nullptr ? s.msg : "(no message)"));
}

absl::Status Init(z_stream& s) {
  s = z_stream{};
  int rc = deflateInit2(&s, kLevel, Z_DEFLATED, kRawWindowBits, kMemLevel, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) return ZlibError("deflateInit2", rc, s);
  return absl::OkStatus();
}

// Compresses `text` with Z_NO_FLUSH (the output depends only on the bytes, not on how
// they are split across calls).
absl::Status Feed(z_stream& s, std::string_view text) {
  constexpr size_t kMaxSlice = std::numeric_limits<uInt>::max() / 2;  // avail_in is 32-bit
  while (!text.empty()) {
    size_t n = std::min(text.size(), kMaxSlice);
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    s.avail_in = static_cast<uInt>(n);
    while (s.avail_in > 0) {
      s.next_out = ScratchOut();
      s.avail_out = kScratchBytes;
      int rc = deflate(&s, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) return ZlibError("deflate", rc, s);
    }
    text.remove_prefix(n);
  }
  return absl::OkStatus();
}

// Ends the stream; returns its total size.
absl::StatusOr<int64_t> Finish(z_stream& s) {
  s.next_in = nullptr;
  s.avail_in = 0;
  for (;;) {
    s.next_out = ScratchOut();
    s.avail_out = kScratchBytes;
    int rc = deflate(&s, Z_FINISH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return ZlibError("deflate(Z_FINISH)", rc, s);
  }
  return static_cast<int64_t>(s.total_out);
}

// Size of `s` finished, leaving `s` itself unfinished.
absl::StatusOr<int64_t> ForkAndFinish(z_stream& s) {
  z_stream fork{};
  int rc = deflateCopy(&fork, &s);
  if (rc != Z_OK) return ZlibError("deflateCopy", rc, s);
  absl::StatusOr<int64_t> size = Finish(fork);
  deflateEnd(&fork);
  return size;
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
  LIL_RETURN_IF_ERROR(Init(stream_));
  initialized_ = true;
  return absl::OkStatus();
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
  LIL_ASSIGN_OR_RETURN(int64_t prefix_bytes, ForkAndFinish(stream_));
  LIL_RETURN_IF_ERROR(Feed(stream_, suffix));
  LIL_ASSIGN_OR_RETURN(int64_t whole_bytes, Finish(stream_));
  return DeflatePairSizes{prefix_bytes, whole_bytes};
}

DeflateStream::~DeflateStream() { Reset(); }

void DeflateStream::Reset() {
  if (stream_ != nullptr) deflateEnd(stream_.get());
  stream_.reset();
}

DeflateStream::DeflateStream(const DeflateStream& other) { *this = other; }

DeflateStream& DeflateStream::operator=(const DeflateStream& other) {
  if (this == &other) return *this;
  Reset();
  status_ = other.status_;
  if (other.stream_ == nullptr || !status_.ok()) return *this;
  stream_ = std::make_unique<z_stream>();
  int rc = deflateCopy(stream_.get(), other.stream_.get());
  if (rc != Z_OK) {
    status_ = ZlibError("deflateCopy", rc, *other.stream_);
    stream_.reset();
  }
  return *this;
}

// Moving hands over the heap z_stream, whose address zlib's state keeps, unchanged.
DeflateStream::DeflateStream(DeflateStream&& other) noexcept
    : stream_(std::move(other.stream_)), status_(std::move(other.status_)) {}

DeflateStream& DeflateStream::operator=(DeflateStream&& other) noexcept {
  if (this == &other) return *this;
  Reset();
  stream_ = std::move(other.stream_);
  status_ = std::move(other.status_);
  return *this;
}

absl::Status DeflateStream::Append(std::string_view text) {
  LIL_RETURN_IF_ERROR(status_);
  if (stream_ == nullptr) {
    stream_ = std::make_unique<z_stream>();
    status_ = Init(*stream_);
    if (!status_.ok()) {
      stream_.reset();
      return status_;
    }
  }
  status_ = Feed(*stream_, text);
  return status_;
}

absl::StatusOr<int64_t> DeflateStream::FinishedSize() {
  LIL_RETURN_IF_ERROR(Append(""));  // starts the stream if nothing was appended yet
  absl::StatusOr<int64_t> size = ForkAndFinish(*stream_);
  if (!size.ok()) status_ = size.status();
  return size;
}

}  // namespace lil
