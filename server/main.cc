// File: server/main.cc
// lilserve: the daemon's entry point. Parses flags, listens (health NOT_SERVING), loads the
// model, serves; SIGTERM or SIGINT drains and exits 0.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <iostream>

#include <spdlog/spdlog.h>

#include "engine/runtime_env.h"
#include "server/server.h"

namespace {

pid_t g_main_tid = 0;

// Threads that exist before main blocks the signals (OpenBLAS starts its pool from a library
// constructor) would take a process-directed SIGTERM with the default action and kill the
// process without draining. Any thread that receives one hands it to the main thread, which
// has it blocked and takes it with sigwait.
void ForwardToMain(int sig) { syscall(SYS_tgkill, getpid(), g_main_tid, sig); }

}  // namespace

int main(int argc, char** argv) {
  lil::EnsurePassiveOpenMp(argv);
  lil::ServerOptions options;
  CLI::App app{"lilserve: LLM inference over gRPC (lilserve.v1) with Prometheus metrics"};
  options.AddFlags(app);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  if (absl::Status s = options.Finalize(); !s.ok()) {
    std::cerr << "lilserve: " << s.message() << "\n";
    return 2;
  }
  // Block the signals in every thread; the main thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  g_main_tid = static_cast<pid_t>(syscall(SYS_gettid));
  struct sigaction forward = {};
  forward.sa_handler = ForwardToMain;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGTERM, &forward, nullptr);
  sigaction(SIGINT, &forward, nullptr);
  signal(SIGPIPE, SIG_IGN);

  lil::Server server(options);
  if (absl::Status s = server.Listen(); !s.ok()) {
    std::cerr << "lilserve: " << s.message() << "\n";
    return 1;
  }
  std::cout << "lilserve: listening on " << options.host << ":" << server.port()
            << " (grpc), metrics on " << options.metrics_host << ":" << server.metrics_port();
  if (server.http_port() >= 0) {
    std::cout << ", openai " << (server.http_tls() ? "https" : "http") << " on "
              << options.http_host << ":" << server.http_port();
  }
  std::cout << std::endl;
  // Load on another thread so a SIGTERM during loading is still taken.
  std::atomic<int> load_failed{0};
  std::thread loader([&] {
    if (absl::Status s = server.LoadAndServe(); !s.ok()) {
      std::cerr << "lilserve: " << s.message() << std::endl;
      load_failed = 1;
      syscall(SYS_tgkill, getpid(), g_main_tid, SIGTERM);
      return;
    }
    std::cout << "lilserve: ready" << std::endl;
  });
  int sig = 0;
  sigwait(&signals, &sig);
  loader.join();
  std::cout << "lilserve: signal " << sig << ", draining" << std::endl;
  server.Drain();
  server.Shutdown();
  std::cout << "lilserve: stopped" << std::endl;
  return load_failed ? 1 : 0;
}
