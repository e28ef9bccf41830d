// File: tests/testing/paths.h
// Where tests find the repository and the build (CTest sets LILSERVE_ROOT / LILSERVE_BUILD).
#pragma once

#include <string>

namespace lil::testing {

std::string RepoRoot();   // $LILSERVE_ROOT, or the current directory
std::string BuildDir();   // $LILSERVE_BUILD, or RepoRoot() + "/build"
// The default model under models/, or "" when it is not there.
std::string DefaultModelPath();

}  // namespace lil::testing
