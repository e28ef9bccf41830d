// File: engine/backend.cc
#include "engine/backend.h"

#include "common/env.h"

namespace lil {

int64_t KvBytesPerPage(const ModelConfig& c, int32_t page_size, int32_t bytes_per_element) {
  return 2LL * c.num_layers * c.num_kv_heads * c.head_dim * page_size * bytes_per_element;
}

bool QuestE4m3Requested() { return EnvIs("LILSERVE_QUEST_FP8", "1"); }

}  // namespace lil
