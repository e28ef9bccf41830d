// File: tests/testing/paths.cc
#include "tests/testing/paths.h"

#include <cstdlib>
#include <filesystem>

namespace lil::testing {

std::string RepoRoot() {
  const char* r = std::getenv("LILSERVE_ROOT");
  return r ? r : std::filesystem::current_path().string();
}

std::string BuildDir() {
  const char* b = std::getenv("LILSERVE_BUILD");
  return b ? b : RepoRoot() + "/build";
}

std::string DefaultModelPath() {
  std::string p = RepoRoot() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(p) ? p : "";
}

}  // namespace lil::testing
