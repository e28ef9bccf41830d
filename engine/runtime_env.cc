// File: engine/runtime_env.cc
#include "engine/runtime_env.h"

#include <cstdlib>
#include <unistd.h>

namespace lil {

void EnsurePassiveOpenMp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

}  // namespace lil
