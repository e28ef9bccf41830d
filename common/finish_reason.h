// File: common/finish_reason.h
// Why a request ended. Every stop condition has its own reason: a monitor or deadline stop
// is never reported as kLength.
#pragma once

#include <string_view>

namespace lil {

enum class FinishReason {
  kNone = 0,       // still running
  kStop,           // the model emitted EOS (or a stop token id)
  kStopSequence,   // a stop string matched
  kLength,         // max_tokens reached (or the model's context is full)
  kEarlyStop,      // the information monitor stopped it
  kDeadline,       // time limit or gRPC deadline passed
  kCancelled,      // the client went away or the server drained
  kAborted,        // an Abort RPC
  kError,          // the request failed (its own error; others are unaffected)
};

std::string_view FinishReasonName(FinishReason reason);  // "stop", "stop_sequence", ...

}  // namespace lil
