// File: tests/reliability/tsan_grpc_batch.cc
// ThreadSanitizer builds only (LILSERVE_TSAN), in the same interposing library as
// tsan_absl_sync.cc: teaches TSan gRPC's one documented ordering guarantee for the callback API,
// "everything before grpc_call_start_batch happens before the batch's completion callback".
// Debian's gRPC is not instrumented, so that edge (made by its combiner, event engine and
// completion queue atomics) is invisible, and the grpc++ templates compiled into our code (the
// reactor's write op set filled by StartWrite on the engine thread, finalized by gRPC's callback
// thread) looked racy. Only this edge is added, for exactly one batch: a race between two
// threads of ours (say the engine thread and a reactor callback touching the same field without
// mu_) has no start_batch/completion pair between them and is still reported
// (tools/sanitize.sh tsan-planted checks that).
//
// grpc++ calls grpc_call_start_batch (libgrpc.so) from libgrpc++.so through the PLT, so this
// definition, in a library linked before gRPC, interposes it. For a callback call the tag is a
// grpc_completion_queue_functor whose functor_run gRPC calls on completion: the batch is started
// with functor_run pointing at Completed(), which acquires what start_batch released, restores
// the original functor_run and calls it. A completion-queue call's tag is a C++ object whose
// first word is a vtable pointer, never a pointer into executable code, which tells them apart.
#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <grpc/grpc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using RunFn = void (*)(grpc_completion_queue_functor*, int);
using StartBatchFn = grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*);

std::mutex g_mu;
std::unordered_map<grpc_completion_queue_functor*, RunFn>* g_pending;  // tag -> functor_run
std::vector<std::pair<uintptr_t, uintptr_t>>* g_code;                  // executable segments

int AddCode(dl_phdr_info* info, size_t, void*) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    if (p.p_type == PT_LOAD && (p.p_flags & PF_X)) {
      const uintptr_t begin = info->dlpi_addr + p.p_vaddr;
      g_code->emplace_back(begin, begin + p.p_memsz);
    }
  }
  return 0;
}

// Whether `addr` lies in an executable segment of a loaded object; g_mu held.
bool IsCode(uintptr_t addr) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (g_code == nullptr) g_code = new std::vector<std::pair<uintptr_t, uintptr_t>>;
    for (const auto& [begin, end] : *g_code) {
      if (addr >= begin && addr < end) return true;
    }
    if (attempt == 0) {  // an object loaded since the last look (dlopen)
      g_code->clear();
      dl_iterate_phdr(AddCode, nullptr);
    }
  }
  return false;
}

void Completed(grpc_completion_queue_functor* f, int ok) {
  __tsan_acquire(f);
  RunFn run = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_pending->find(f);
    if (it == g_pending->end()) {
      std::fprintf(stderr, "tsan_grpc_batch: completion of an unknown tag %p\n",
                   static_cast<void*>(f));
      std::abort();
    }
    run = it->second;
    g_pending->erase(it);
  }
  f->functor_run = run;
  run(f, ok);
}

}  // namespace

extern "C" grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops,
                                                 void* tag, void* reserved) {
  static auto real = reinterpret_cast<StartBatchFn>(dlsym(RTLD_NEXT, "grpc_call_start_batch"));
  if (real == nullptr) {
    std::fprintf(stderr, "tsan_grpc_batch: grpc_call_start_batch not found\n");
    std::abort();
  }
  auto* f = static_cast<grpc_completion_queue_functor*>(tag);
  bool wrapped = false;
  if (f != nullptr) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_pending == nullptr) {
      g_pending = new std::unordered_map<grpc_completion_queue_functor*, RunFn>;
    }
    const auto run = reinterpret_cast<uintptr_t>(f->functor_run);
    // gRPC allows one batch per tag at a time, so an entry still here is stale (a call whose
    // memory was reused): replaced.
    if (f->functor_run != &Completed && IsCode(run)) {
      (*g_pending)[f] = f->functor_run;
      f->functor_run = &Completed;
      wrapped = true;
    }
  }
  if (wrapped) __tsan_release(f);
  const grpc_call_error e = real(call, ops, nops, tag, reserved);
  if (wrapped && e != GRPC_CALL_OK) {  // no completion will come
    std::lock_guard<std::mutex> lock(g_mu);
    f->functor_run = (*g_pending)[f];
    g_pending->erase(f);
  }
  return e;
}
