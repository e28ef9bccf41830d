// File: engine/cuda/dl_open.h
// Opening a CUDA library at run time (cuBLAS, NCCL): the module then loads, and a GPU still
// serves, where a library is missing; only the feature that needs it fails, saying why.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace lil::cuda {

// Tries $env_var (when set), then each of `names`, with dlopen; `resolve` gets each opened
// handle, looks up the symbols into the caller's table and says whether all were found. OK
// with `*opened` = the name that worked; NOT_FOUND naming every attempt otherwise. The
// handle is never closed (the symbols stay in use for the process' life).
absl::Status OpenLibrary(const char* env_var, const std::vector<std::string>& names,
                         const std::function<bool(void* handle)>& resolve, std::string* opened);

}  // namespace lil::cuda
