// File: scheduler/deflate_size.h
// Sizes of zlib raw DEFLATE streams (level 6, windowBits -15, memLevel 8, default strategy,
// complete stream ended with Z_FINISH), measured without keeping the compressed bytes: a
// reusable one-shot sizer and a live stream whose finished size can be read at any point.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <zlib.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lil {

// DEFLATE's match distance limit: no byte further back than this can shape the encoding of
// a new byte, which is why the windowed monitor keeps only this much history.
inline constexpr size_t kDeflateWindowBytes = 32 * 1024;

struct DeflatePairSizes {
  int64_t prefix_bytes = 0;  // size of the stream of `prefix` alone
  int64_t whole_bytes = 0;   // size of the stream of `prefix` followed by `suffix`
};

class DeflateSizer {
 public:
  DeflateSizer() = default;
  ~DeflateSizer();
  DeflateSizer(const DeflateSizer&) = delete;
  DeflateSizer& operator=(const DeflateSizer&) = delete;

  // Size in bytes of the complete raw DEFLATE stream of `text`.
  absl::StatusOr<int64_t> Size(std::string_view text);

  // size(prefix) and size(prefix + suffix) in one pass over prefix: the state after
  // `prefix` is forked with deflateCopy, one copy is finished alone and the other goes on
  // with `suffix`. zlib's output does not depend on how its input is split into deflate()
  // calls, so both equal separate compressions (the tests check this).
  absl::StatusOr<DeflatePairSizes> PairSizes(std::string_view prefix, std::string_view suffix);

  // A per-thread sizer, so that monitors of many requests share one zlib state (about
  // 256 KiB) instead of holding one each. Engine-thread code only borrows it within a call.
  static DeflateSizer& ThreadLocal();

 private:
  absl::Status Start();  // init or reset stream_

  z_stream stream_{};
  bool initialized_ = false;
};

// A live raw DEFLATE stream over all text appended so far. FinishedSize() forks the zlib
// state and finishes the fork, so it equals a one-shot compression of all the text (the
// paper's measure, exactly) at the cost of the new text plus a ~256 KiB state copy and the
// pending block's Huffman coding; the live stream is never flushed. Holds ~268 KiB of zlib
// state from the first Append. Copyable (deflateCopy); errors stick and are returned.
class DeflateStream {
 public:
  DeflateStream() = default;
  ~DeflateStream();
  DeflateStream(const DeflateStream& other);
  DeflateStream& operator=(const DeflateStream& other);
  DeflateStream(DeflateStream&& other) noexcept;
  DeflateStream& operator=(DeflateStream&& other) noexcept;

  absl::Status Append(std::string_view text);
  // Size of the complete stream if it ended now.
  absl::StatusOr<int64_t> FinishedSize();

 private:
  void Reset();

  std::unique_ptr<z_stream> stream_;  // on the heap: zlib's state points back at it
  absl::Status status_;
};

}  // namespace lil
