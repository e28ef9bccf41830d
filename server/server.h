// File: server/server.h
// The daemon's lifecycle: gRPC (services, health, reflection, optional TLS) and the HTTP
// metrics server come up first and report NOT_SERVING; then the model loads, the engine
// loop starts and a one-token forward passes, and only then health turns SERVING.
// Drain() is the SIGTERM path: NOT_SERVING, new calls get UNAVAILABLE, running requests
// get a grace period, then the rest end as CANCELLED.
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/openai_http.h"
#include "server/server_core.h"
#include "server/services.h"

namespace lil {

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Starts listening (ports are known after this returns).
  absl::Status Listen();
  // Loads the model, starts the engine, runs the warm-up forward, turns ready.
  absl::Status LoadAndServe();
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }  // OpenAI API; -1: off
  bool http_tls() const { return openai_ != nullptr && openai_->tls(); }

  void Drain();
  void Shutdown();

 private:
  void SetServing(bool serving);
  absl::Status WarmUp();

  ServerOptions options_;
  std::string served_model_name_;
  std::unique_ptr<Metrics> metrics_;
  ServerCore core_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<EngineLoop> engine_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<ControlService> control_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<MetricsHttpServer> http_;
  std::unique_ptr<OpenAiHttpServer> openai_;
  int port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = -1;
  bool shut_down_ = false;
};

}  // namespace lil
