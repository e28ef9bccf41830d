// File: server/server.cc
#include "server/server.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "common/log.h"
#include "common/status.h"

namespace lil {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(flag, ": cannot read \"", path, "\"");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {
  MetricsOptions mo;
  mo.vllm_compat = options_.metrics_compat == "vllm";
  // One name for the vLLM metric label and the OpenAI API's model id.
  served_model_name_ = options_.served_model_name.empty()
                           ? std::filesystem::path(options_.model).filename().string()
                           : options_.served_model_name;
  mo.model_name = served_model_name_;
  metrics_ = std::make_unique<Metrics>(mo);
  core_.options = &options_;
  core_.metrics = metrics_.get();
  metrics_->SetReady(false, false);
}

Server::~Server() { Shutdown(); }

absl::Status Server::Listen() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!options_.tls_cert.empty()) {
    LIL_ASSIGN_OR_RETURN(std::string cert, ReadFile(options_.tls_cert, "--tls-cert"));
    LIL_ASSIGN_OR_RETURN(std::string key, ReadFile(options_.tls_key, "--tls-key"));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    creds = grpc::SslServerCredentials(ssl);
  }
  inference_ = std::make_unique<InferenceService>(&core_);
  control_ = std::make_unique<ControlService>(&core_);
  grpc::ServerBuilder builder;
  // No SO_REUSEPORT (gRPC sets it by default on Linux): a second daemon on a taken port then
  // fails here with a clear error instead of silently sharing the port with the first, the
  // kernel handing each new client to either one (one of them perhaps still loading).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options_.host + ":" + std::to_string(options_.port), creds, &port_);
  builder.SetMaxReceiveMessageSize(options_.max_request_bytes);
  builder.RegisterService(inference_.get());
  builder.RegisterService(control_.get());
  grpc_ = builder.BuildAndStart();
  if (!grpc_ || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.host, ":", options_.port, " (--host/--port)"));
  }
  // gRPC's default health service starts as SERVING for "" (the whole server): from
  // BuildAndStart to here a health check can see SERVING before anything is loaded. Clients that
  // poll health from the daemon's start (tools/run.sh) want two SERVING answers in a row.
  SetServing(false);
  if (options_.metrics_port >= 0) {
    http_ = std::make_unique<MetricsHttpServer>(metrics_.get(), [this] { return core_.accepting(); });
    LIL_ASSIGN_OR_RETURN(metrics_port_, http_->Start(options_.metrics_host, options_.metrics_port));
  }
  if (options_.http_port >= 0) {
    OpenAiHttpServer::Options o;
    o.host = options_.http_host.empty() ? options_.host : options_.http_host;
    o.port = options_.http_port;
    o.tls_cert = options_.tls_cert;  // TLS on gRPC means TLS here too, never plaintext
    o.tls_key = options_.tls_key;
    o.threads = options_.http_threads;
    o.model_name = served_model_name_;
    o.max_body_bytes = options_.max_request_bytes;
    openai_ = std::make_unique<OpenAiHttpServer>(&core_, std::move(o));
    LIL_ASSIGN_OR_RETURN(http_port_, openai_->Start());
  }
  return absl::OkStatus();
}

void Server::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = grpc_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(serving);  // "" (the whole server) and every service
  }
  metrics_->SetReady(serving, core_.draining.load());
}

absl::Status Server::LoadAndServe() {
  LIL_LOG_INFO("loading {}", options_.model);
  LIL_ASSIGN_OR_RETURN(model_, Model::Load(options_.model, options_.ToLoadOptions()));
  engine_ = std::make_unique<EngineLoop>(model_.get(), options_.ToEngineOptions());
  engine_->SetStepObserver([m = metrics_.get()](const StepReport& r) { m->OnStep(r); });
  // A backend that stopped for good (a tensor-parallel group aborted) fails every request:
  // health says NOT_SERVING so load balancers and Kubernetes' probes act on it.
  engine_->SetBackendLostObserver([this](const absl::Status&) { SetServing(false); });
  LIL_RETURN_IF_ERROR(engine_->Start());
  RequestLimits& l = core_.limits;
  l.default_max_tokens = options_.default_max_tokens;
  l.max_tokens_limit = options_.max_tokens_limit;
  l.max_prompt_chars = options_.max_prompt_chars;
  l.max_model_len = std::min(options_.max_model_len, model_->config().max_position_embeddings);
  l.vocab_size = model_->config().vocab_size;
  l.default_sparse = options_.DefaultSparse();
  l.default_monitor = options_.DefaultMonitor();
  core_.codec = ModelCodec(*model_);
  core_.model = model_.get();
  core_.engine = engine_.get();
  LIL_RETURN_IF_ERROR(WarmUp());
  core_.ready.store(true, std::memory_order_release);
  SetServing(true);
  LIL_LOG_INFO("ready: {} on {} ({} layers, vocab {}, max_model_len {})", options_.model,
               model_->backend().name(), model_->config().num_layers, l.vocab_size,
               l.max_model_len);
  return absl::OkStatus();
}

// One real forward through the engine loop: readiness means a request can be served.
absl::Status Server::WarmUp() {
  SchedulerRequest req;
  req.prompt = model_->tokenizer().Encode("Hello", true);
  if (req.prompt.empty()) req.prompt = {0};
  req.stopping.max_tokens = 1;
  req.sampling.temperature = 0;
  LIL_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine_->Submit(std::move(req)));
  RequestOutput out;
  const absl::Time deadline = absl::Now() + absl::Seconds(300);
  while (absl::Now() < deadline) {
    if (!stream->Next(&out, absl::Seconds(1))) continue;
    if (!out.finished) continue;
    if (out.finish_reason == FinishReason::kError || out.usage.completion_tokens != 1) {
      return absl::InternalError(absl::StrCat("warm-up forward failed: ",
                                              stream->error().message(), " (finish ",
                                              std::string(FinishReasonName(out.finish_reason)), ")"));
    }
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError("warm-up forward took more than 300 s");
}

void Server::Drain() {
  if (core_.draining.exchange(true)) return;
  LIL_LOG_INFO("draining: {} live requests, grace {} s", core_.registry.size(),
               options_.drain_grace_s);
  if (grpc_) SetServing(false);
  const absl::Time grace_end = absl::Now() + absl::Seconds(options_.drain_grace_s);
  while (core_.registry.size() > 0 && absl::Now() < grace_end) absl::SleepFor(absl::Milliseconds(20));
  if (core_.engine != nullptr) {
    for (RequestId id : core_.registry.LiveIds()) core_.engine->Cancel(id);
  }
  // Cancelled requests finish within one engine step; give their last messages time to go.
  const absl::Time cancel_end = absl::Now() + absl::Seconds(10);
  while (core_.registry.size() > 0 && absl::Now() < cancel_end) absl::SleepFor(absl::Milliseconds(10));
  LIL_LOG_INFO("drained ({} requests left)", core_.registry.size());
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  core_.draining.store(true);
  if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (engine_) engine_->Stop();
  if (grpc_) grpc_->Wait();
  if (openai_) openai_->Stop();  // after the engine: its streams have all finished
  if (http_) http_->Stop();
}

}  // namespace lil
