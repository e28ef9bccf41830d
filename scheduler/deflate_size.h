// File: scheduler/deflate_size.h
// Sizes of zlib raw DEFLATE streams (level 6, windowBits -15, memLevel 8, default strategy,
// complete stream ended with Z_FINISH), measured without keeping the compressed bytes. The
// information monitor's only compressor; one reusable zlib state per sizer.
#pragma once

#include <cstdint>
#include <string_view>

#include <zlib.h>

#include "absl/status/statusor.h"

namespace lil {

// DEFLATE's match distance limit: no byte further back than this can shape the encoding of
// a new byte, which is why the monitor keeps only this much history.
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
  absl::Status Start();                                   // init or reset stream_
  absl::Status Feed(z_stream& s, std::string_view text);  // Z_NO_FLUSH
  absl::StatusOr<int64_t> Finish(z_stream& s);            // Z_FINISH, returns total_out

  z_stream stream_{};
  bool initialized_ = false;
  unsigned char out_[16 * 1024];  // compressed bytes are counted, then overwritten
};

}  // namespace lil
