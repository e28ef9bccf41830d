// File: engine/format/gguf_llama.h
// Llama-family specifics of GGUF files written by llama.cpp's converter, which a loader
// needs to reproduce HuggingFace numerics from a GGUF file.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace lil {

// llama.cpp's converter reorders the rows of attn_q / attn_k so that each head's rotary pairs
// are adjacent (GGUF row h*d + 2*i + j holds HF row h*d + j*d/2 + i, for i < d/2, j in {0,1},
// d = rows / n_heads). This puts them back in HF order (rotate-half RoPE), in place, on a
// row-major [rows, cols] F32 matrix (pass n_kv_heads for attn_k). INVALID_ARGUMENT when rows
// is not a multiple of 2 * n_heads.
absl::Status UndoGgufRopePermutation(float* w, int64_t rows, int64_t cols, int64_t n_heads);

}  // namespace lil
