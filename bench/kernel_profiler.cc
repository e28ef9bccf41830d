// File: bench/kernel_profiler.cc
// A per-kernel time table for any CUDA program, without nsys (not on the GPU image): a CUDA
// injection library. The driver loads it when CUDA_INJECTION64_PATH names it, calls
// InitializeInjection(), and from then on CUPTI's activity API records every kernel's start and
// end on the GPU, including kernels replayed from CUDA graphs and launched with PDL. At exit
// the records are grouped by kernel name and grid and printed as a Markdown table, heaviest
// first: launches, total and mean time, share of the summed kernel time, the exposed time (the
// part of each launch after every earlier kernel ended: with PDL a kernel starts early and its
// first microseconds are the previous kernel's) and its share of the busy time, block. Also printed:
// the span from the first kernel start to the last kernel end and the GPU time not covered by
// any kernel inside it (launch gaps, host waits, memcpys).
//
//   CUDA_INJECTION64_PATH=build-cuda/bench/libkernel_profiler.so
//   LILSERVE_KPROF_OUT=kprof.md build-cuda/bench/gpu_decode_bench --batch 1 --context 1024 ...
//
// $LILSERVE_KPROF_OUT: file for the table (default: stderr). $LILSERVE_KPROF_SKIP: kernels
// to drop from the start (model load, warm-up), counted in launch order across the process.
// $LILSERVE_KPROF_DEVICE: keep only that GPU's kernels (under tensor parallelism the ranks'
// timelines otherwise interleave, and "exposed" means exposed on neither GPU).
// $LILSERVE_KPROF_RAW: also every record as CSV (device, start, end, kernel), for
// bench/tp_skew.py.
// Records are kept in memory (48 bytes each); a decode run of a few thousand steps is fine.
#include <cupti.h>

#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr size_t kBufferBytes = 8 << 20;

struct KernelRecord {
  uint64_t start, end;
  const char* name;  // owned by CUPTI for the life of the process
  int32_t grid[3], block[3];
  uint32_t device;
};

std::mutex mu;
std::vector<KernelRecord>* records = nullptr;  // leaked on purpose: used from atexit
uint64_t dropped = 0;
int64_t only_device = -1;  // $LILSERVE_KPROF_DEVICE: one GPU's kernels (a TP rank's timeline)

void CheckCupti(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "kernel_profiler: %s failed: %s\n", what, msg ? msg : "?");
}

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI BufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    if (only_device >= 0 && static_cast<int64_t>(k->deviceId) != only_device) continue;
    records->push_back(
        {k->start, k->end, k->name, {k->gridX, k->gridY, k->gridZ}, {k->blockX, k->blockY, k->blockZ}, k->deviceId});
  }
  size_t n = 0;
  cuptiActivityGetNumDroppedRecords(nullptr, 0, &n);
  dropped += n;
  std::free(buffer);
}

// "void lil::cuda::(anonymous namespace)::GemvKernel<4>(lil::cuda::GemmParams)" ->
// "GemvKernel<4>": the function name with its template arguments, no scope or parameters.
std::string ShortName(const char* mangled) {
  if (mangled == nullptr) return "?";
  int status = 0;
  char* full = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && full ? full : mangled;
  std::free(full);
  // Cut the parameter list: the last '(' at template depth 0.
  int depth = 0;
  size_t cut = s.size();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0 && s.compare(i, 11, "(anonymous ") != 0) cut = i;
  }
  s.resize(cut);
  // Drop scopes: the last "::" at template depth 0.
  depth = 0;
  size_t begin = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (depth == 0 && s[i] == ':' && s[i + 1] == ':') begin = i + 2;
  }
  s = s.substr(begin);
  if (s.compare(0, 5, "void ") == 0) s = s.substr(5);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

void Report() {
  CheckCupti(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(mu);
  std::vector<KernelRecord>& all = *records;
  std::sort(all.begin(), all.end(), [](const KernelRecord& a, const KernelRecord& b) { return a.start < b.start; });
  const char* skip_env = std::getenv("LILSERVE_KPROF_SKIP");
  const size_t skip = std::min(all.size(), static_cast<size_t>(skip_env ? std::strtoull(skip_env, nullptr, 10) : 0));
  struct Row {
    uint64_t count = 0;
    double total_ns = 0, exposed_ns = 0;
    int32_t block[3];  // the grid is part of the row's key
  };
  // One row per kernel and launch shape (a GEMV on the LM head is not one on the O matrix).
  std::map<std::string, Row> rows;
  double sum_ns = 0, covered_ns = 0;
  uint64_t cover_end = 0;
  for (size_t i = skip; i < all.size(); ++i) {
    const KernelRecord& k = all[i];
    Row& r = rows[ShortName(k.name) + " " + std::to_string(k.grid[0]) + "x" + std::to_string(k.grid[1]) + "x" +
                  std::to_string(k.grid[2])];
    if (r.count == 0) std::copy(k.block, k.block + 3, r.block);
    ++r.count;
    r.total_ns += static_cast<double>(k.end - k.start);
    sum_ns += static_cast<double>(k.end - k.start);
    // Union of the kernel intervals (sorted by start): what the GPU spent inside some kernel.
    // The part after every earlier kernel ended is this kernel's "exposed" time: with PDL a
    // kernel starts early and waits, and that wait is the previous kernel's time, not its own.
    const uint64_t from = std::max(k.start, cover_end);
    if (k.end > from) {
      covered_ns += static_cast<double>(k.end - from);
      r.exposed_ns += static_cast<double>(k.end - from);
    }
    cover_end = std::max(cover_end, k.end);
  }
  const char* path = std::getenv("LILSERVE_KPROF_OUT");
  FILE* f = path ? std::fopen(path, "w") : stderr;
  if (f == nullptr) f = stderr;
  const double span_ns = all.size() > skip ? static_cast<double>(cover_end - all[skip].start) : 0;
  std::fprintf(f, "kernel_profiler: %zu kernels (%zu skipped, %llu records dropped by CUPTI)\n", all.size() - skip,
               skip, static_cast<unsigned long long>(dropped));
  std::fprintf(f, "span %.3f ms from the first kernel start to the last end; inside some kernel %.3f ms (%.1f%%); "
               "summed kernel time %.3f ms (more than the union where PDL overlaps kernels)\n\n",
               span_ns / 1e6, covered_ns / 1e6, span_ns > 0 ? 100.0 * covered_ns / span_ns : 0.0, sum_ns / 1e6);
  std::vector<std::pair<std::string, Row>> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.total_ns > b.second.total_ns; });
  std::fprintf(f, "| kernel grid | launches | total ms | mean us | share | exposed mean us | exposed share | block |\n"
                 "|---|---|---|---|---|---|---|---|\n");
  for (const auto& [name, r] : sorted) {
    std::fprintf(f, "| %s | %llu | %.3f | %.2f | %.1f%% | %.2f | %.1f%% | %dx%dx%d |\n", name.c_str(),
                 static_cast<unsigned long long>(r.count), r.total_ns / 1e6, r.total_ns / 1e3 / r.count,
                 sum_ns > 0 ? 100.0 * r.total_ns / sum_ns : 0.0, r.exposed_ns / 1e3 / r.count,
                 covered_ns > 0 ? 100.0 * r.exposed_ns / covered_ns : 0.0, r.block[0], r.block[1], r.block[2]);
  }
  if (f != stderr) std::fclose(f);
  // $LILSERVE_KPROF_RAW: every kept record as CSV (device, start ns, end ns, kernel and grid),
  // in start order; CUPTI puts every GPU's times on one clock, so the ranks of a tensor-parallel
  // run can be lined up (bench/tp_skew.py).
  if (const char* raw_path = std::getenv("LILSERVE_KPROF_RAW"); raw_path != nullptr && *raw_path != '\0') {
    if (FILE* raw = std::fopen(raw_path, "w"); raw != nullptr) {
      std::fprintf(raw, "device,start_ns,end_ns,kernel\n");
      for (size_t i = skip; i < all.size(); ++i) {
        const KernelRecord& k = all[i];
        std::fprintf(raw, "%u,%llu,%llu,%s %dx%dx%d\n", k.device, static_cast<unsigned long long>(k.start),
                     static_cast<unsigned long long>(k.end), ShortName(k.name).c_str(), k.grid[0], k.grid[1], k.grid[2]);
      }
      std::fclose(raw);
    }
  }
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int InitializeInjection(void) {
  records = new std::vector<KernelRecord>();
  if (const char* d = std::getenv("LILSERVE_KPROF_DEVICE"); d != nullptr && *d != '\0') only_device = std::atoll(d);
  records->reserve(1 << 20);
  CheckCupti(cuptiActivityRegisterCallbacks(BufferRequested, BufferCompleted), "cuptiActivityRegisterCallbacks");
  // CONCURRENT_KERNEL: kernels are not serialized by the profiler, so PDL overlap stays.
  CheckCupti(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable");
  std::atexit(Report);
  return 1;
}
