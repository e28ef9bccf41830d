// File: server/metrics_http.h
// Plain-HTTP endpoints beside the gRPC port (cpp-httplib; DEPENDENCIES.md says why not
// civetweb): /metrics (Prometheus text), /health (200 while the process serves HTTP) and
// /ready (200 only when gRPC requests are accepted; 503 while loading or draining).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace lil {

class Metrics;

class MetricsHttpServer {
 public:
  // `ready` is polled per /ready request.
  MetricsHttpServer(Metrics* metrics, std::function<bool()> ready);
  ~MetricsHttpServer();  // Stop()s

  // Binds host:port (port 0 picks a free one) and serves on a thread; returns the port.
  absl::StatusOr<int> Start(const std::string& host, int port);
  void Stop();

 private:
  Metrics* metrics_;
  std::function<bool()> ready_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

}  // namespace lil
