// File: server/openai_http.h
// The OpenAI-compatible HTTP API (docs/OPENAI.md) on its own port (--http-port), served by
// cpp-httplib: POST /v1/completions and /v1/chat/completions (JSON or server-sent events),
// GET /v1/models; HTTPS with the gRPC port's --tls-cert/--tls-key and the same bearer token.
// Generation goes through OpenAiCall into the one engine loop; one HTTP worker thread per
// open connection (--http-threads bounds the connections served at once).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/openai_request.h"
#include "server/server_core.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace lil {

class OpenAiHttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 0;          // 0 picks a free one
    std::string tls_cert;  // PEM files; both set: HTTPS only
    std::string tls_key;
    int threads = 64;        // worker threads = connections served at once
    std::string model_name;  // the one id of /v1/models; a request's "model" must match it
    int64_t max_body_bytes = 4 << 20;
  };

  OpenAiHttpServer(ServerCore* core, Options options);
  ~OpenAiHttpServer();  // Stop()s

  // Binds and serves on a thread; returns the port.
  absl::StatusOr<int> Start();
  void Stop();
  bool tls() const { return !options_.tls_cert.empty(); }

 private:
  void AddRoutes();
  // Bearer token, then loading / draining; false with the error to send.
  bool Admit(const httplib::Request& req, OpenAiError* error) const;
  void Generate(OpenAiEndpoint endpoint, const httplib::Request& req, httplib::Response& res);
  std::string ModelJson() const;

  ServerCore* core_;
  Options options_;
  int64_t started_unix_s_ = 0;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

}  // namespace lil
