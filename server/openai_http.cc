// File: server/openai_http.cc
#include "server/openai_http.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "server/openai_call.h"
#include "server/openai_response.h"

namespace lil {
namespace {

using json = nlohmann::json;

void Reply(httplib::Response& res, const OpenAiError& e) {
  res.status = e.http_status;
  if (e.http_status == 429 || e.http_status == 503) res.set_header("Retry-After", "1");
  res.set_content(OpenAiErrorBody(e), "application/json");
}

OpenAiError Error(int status, std::string message, std::string code = "") {
  OpenAiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.code = std::move(code);
  if (status >= 500) e.type = "server_error";
  return e;
}

// The SSE text for one batch of outputs; an engine error after tokens went out becomes an
// error event (the HTTP status is already 200).
std::string Events(const OpenAiCall& call, const OpenAiRequest& request, OpenAiResponder& responder,
                   RequestOutput batch) {
  if (!batch.finished || call.error().ok()) return responder.StreamChunk(batch);
  batch.finished = false;
  return responder.StreamChunk(batch) +
         OpenAiResponder::StreamError(ToOpenAiError(call.error(), &request));
}

}  // namespace

OpenAiHttpServer::OpenAiHttpServer(ServerCore* core, Options options)
    : core_(core), options_(std::move(options)) {}

OpenAiHttpServer::~OpenAiHttpServer() { Stop(); }

absl::StatusOr<int> OpenAiHttpServer::Start() {
  if (tls()) {
    auto ssl =
        std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(), options_.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-cert \"", options_.tls_cert, "\" / --tls-key \"", options_.tls_key,
                       "\": OpenSSL cannot load them for the HTTP API (--http-port)"));
    }
    http_ = std::move(ssl);
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  const int threads = options_.threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_tcp_nodelay(true);  // one small SSE event per engine step
  http_->set_keep_alive_max_count(1000);
  started_unix_s_ = absl::ToUnixSeconds(absl::Now());
  AddRoutes();
  const std::string& host = options_.host;
  int bound = options_.port;
  if (bound == 0) {
    bound = http_->bind_to_any_port(host);
  } else if (!http_->bind_to_port(host, bound)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("--http-port: cannot bind ", host, ":", options_.port));
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return bound;
}

void OpenAiHttpServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

bool OpenAiHttpServer::Admit(const httplib::Request& req, OpenAiError* error) const {
  const std::string& token = core_->options->auth_token;
  if (!token.empty()) {
    if (!req.has_header("Authorization")) {
      *error = Error(401, "missing 'Authorization: Bearer <token>' header", "invalid_api_key");
      return false;
    }
    if (!BearerMatches(req.get_header_value("Authorization"), token)) {
      *error = Error(401, "invalid bearer token", "invalid_api_key");
      return false;
    }
  }
  if (core_->draining.load()) {
    *error = Error(503, "the server is draining (shutting down)", "unavailable");
    return false;
  }
  if (!core_->ready.load(std::memory_order_acquire)) {
    *error = Error(503, "the server is not ready (model loading)", "unavailable");
    return false;
  }
  return true;
}

std::string OpenAiHttpServer::ModelJson() const {
  json m = {{"id", options_.model_name},    {"object", "model"},
            {"created", started_unix_s_},   {"owned_by", "lilserve"},
            {"root", core_->model->path()}, {"max_model_len", core_->limits.max_model_len}};
  return m.dump(-1, ' ', false, json::error_handler_t::replace);
}

void OpenAiHttpServer::AddRoutes() {
  http_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(OpenAiEndpoint::kCompletions, req, res);
  });
  http_->Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(OpenAiEndpoint::kChat, req, res);
  });
  http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    OpenAiError e;
    if (!Admit(req, &e)) return Reply(res, e);
    res.set_content(absl::StrCat("{\"object\":\"list\",\"data\":[", ModelJson(), "]}"),
                    "application/json");
  });
  http_->Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
    OpenAiError e;
    if (!Admit(req, &e)) return Reply(res, e);
    if (req.matches[1] != options_.model_name) {
      return Reply(res, Error(404,
                              absl::StrCat("the model '", std::string(req.matches[1]),
                                           "' does not exist; this server serves '",
                                           options_.model_name, "'"),
                              "model_not_found"));
    }
    res.set_content(ModelJson(), "application/json");
  });
  // Probes stay open (no token), like gRPC health.
  http_->Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http_->Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = core_->accepting();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  // Everything else that fails (unknown path, body over --max-request-bytes, a malformed
  // request line) still answers in OpenAI's error shape.
  http_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = absl::StrCat("HTTP ", res.status);
        if (res.status == 404) message = absl::StrCat("no route ", req.method, " ", req.path);
        if (res.status == 413) message = "the request body is larger than --max-request-bytes";
        Reply(res, Error(res.status, message));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LIL_LOG_ERROR("openai: handler failed: {}", what);
        Reply(res, Error(500, absl::StrCat("internal error: ", what)));
      });
}

void OpenAiHttpServer::Generate(OpenAiEndpoint endpoint, const httplib::Request& req,
                                httplib::Response& res) {
  OpenAiError error;
  auto reject = [&](const OpenAiError& e, absl::StatusCode code) {
    core_->metrics->OnRejected(std::string(absl::StatusCodeToString(code)));
    Reply(res, e);
  };
  if (!Admit(req, &error)) {
    return reject(error, error.http_status == 401 ? absl::StatusCode::kUnauthenticated
                                                  : absl::StatusCode::kUnavailable);
  }
  auto request = std::make_shared<OpenAiRequest>();
  if (!ParseOpenAiRequest(endpoint, req.body, request.get(), &error)) {
    return reject(error, absl::StatusCode::kInvalidArgument);
  }
  if (!request->model.empty() && request->model != options_.model_name) {
    OpenAiError e =
        Error(404,
              absl::StrCat("the model '", request->model, "' does not exist; this server serves '",
                           options_.model_name, "'"),
              "model_not_found");
    e.param = "model";
    return reject(e, absl::StatusCode::kNotFound);
  }
  const int fd =
      FindConnectionSocket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  auto call = std::make_shared<OpenAiCall>(core_, fd);
  if (!call->Start(*request, req.get_header_value("X-Request-Id"), &error))
    return Reply(res, error);
  res.set_header("X-Request-Id", call->request_id());

  OpenAiResponder::Options ro;
  ro.endpoint = endpoint;
  ro.request_id = call->request_id();
  ro.id =
      absl::StrCat(endpoint == OpenAiEndpoint::kChat ? "chatcmpl-" : "cmpl-", call->request_id());
  ro.model = options_.model_name;
  ro.created = call->arrival_unix_s();
  ro.logprobs = request->logprobs;
  ro.top_logprobs = request->top_logprobs;
  ro.include_usage = request->include_usage;
  ro.return_token_ids = request->return_token_ids;
  ro.tokenizer = &core_->model->tokenizer();
  auto responder = std::make_shared<OpenAiResponder>(ro);

  // The engine's own checks (sparse budgets, ...) may still refuse the request: wait for its
  // first output so that a refusal is an HTTP error, not a stream that fails.
  RequestOutput first;
  call->Next(&first);
  if (first.finished && !call->error().ok() && first.new_tokens.empty() && first.text.empty()) {
    return Reply(res, ToOpenAiError(call->error(), request.get()));
  }
  if (call->client_gone() && call->finished()) {
    res.status = 499;  // nobody is listening any more
    return;
  }
  if (!request->stream) {
    RequestOutput all = std::move(first), batch;
    while (call->Next(&batch)) MergeOutput(std::move(batch), &all);
    if (!call->error().ok()) return Reply(res, ToOpenAiError(call->error(), request.get()));
    res.set_content(responder->Response(all), "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto opening = std::make_shared<std::string>(
      responder->StreamStart() + Events(*call, *request, *responder, std::move(first)));
  res.set_chunked_content_provider(
      "text/event-stream",
      [call, request, responder, opening](size_t, httplib::DataSink& sink) {
        std::string events;
        if (!opening->empty()) {
          events.swap(*opening);
        } else {
          RequestOutput batch;
          if (!call->Next(&batch)) {
            sink.done();
            return true;
          }
          events = Events(*call, *request, *responder, std::move(batch));
        }
        if (!events.empty() && !sink.write(events.data(), events.size())) {
          call->Cancel();  // the client is gone; ~OpenAiCall waits for the engine's finish
          return false;
        }
        if (call->finished()) sink.done();
        return true;
      },
      [call](bool success) {
        if (!success) call->Cancel();
      });
}

}  // namespace lil
