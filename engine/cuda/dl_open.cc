// File: engine/cuda/dl_open.cc
#include "engine/cuda/dl_open.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace lil::cuda {

absl::Status OpenLibrary(const char* env_var, const std::vector<std::string>& names,
                         const std::function<bool(void* handle)>& resolve, std::string* opened) {
  std::vector<std::string> tries;
  if (const char* env = std::getenv(env_var); env != nullptr && env[0] != 0) tries.push_back(env);
  tries.insert(tries.end(), names.begin(), names.end());
  std::string errors;
  for (const std::string& name : tries) {
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      absl::StrAppend(&errors, e != nullptr ? e : name, "; ");
      continue;
    }
    if (resolve(h)) {
      if (opened != nullptr) *opened = name;
      return absl::OkStatus();
    }
    absl::StrAppend(&errors, name, ": missing symbols; ");
  }
  return absl::NotFoundError(absl::StrCat(errors, "set ", env_var, " to the library's path"));
}

}  // namespace lil::cuda
