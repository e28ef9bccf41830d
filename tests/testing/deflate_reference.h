// File: tests/testing/deflate_reference.h
// The monitor's reference size, computed independently of scheduler/deflate_size: raw DEFLATE
// (windowBits -15, level 6, memLevel 8) of the whole text in one Z_FINISH call.
#pragma once

#include <cstdint>
#include <string>

namespace lil::testing {

int64_t WholeRawDeflateSize(const std::string& text);

}  // namespace lil::testing
