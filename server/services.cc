// File: server/services.cc
// Security: every RPC of Inference and Control checks the bearer token before anything else
// (Generate and Tokenize through ServerCore::Admit, Abort / GetModelInfo / GetServerInfo
// through ServerCore::Authenticate; tests/server/auth_test.cc calls each one). grpc.health.v1
// and server reflection stay open: probes carry no token and reflection only describes the
// public .proto. No request field names a file: requests reach the tokenizer, the chat
// template (data only; the Jinja interpreter has no include/import) and the engine, never the
// filesystem (docs/RELIABILITY.md).
#include "server/services.h"

#include "server/generate_reactor.h"

namespace lil {
namespace {
namespace v1 = ::lilserve::v1;

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const grpc::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(s);
  return r;
}

}  // namespace

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) {
  return new GenerateReactor(core_, ctx, request);  // deletes itself in OnDone
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* ctx,
                                                     const v1::TokenizeRequest* request,
                                                     v1::TokenizeResponse* response) {
  grpc::Status s = core_->Admit(ctx);
  if (!s.ok()) return Reply(ctx, s);
  if (absl::Status v = ValidateTokenize(*request, core_->limits); !v.ok()) {
    return Reply(ctx, ToGrpc(v));
  }
  for (TokenId id : core_->model->tokenizer().Encode(request->text(), request->add_special_tokens())) {
    response->add_token_ids(id);
  }
  return Reply(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ControlService::Abort(grpc::CallbackServerContext* ctx,
                                                const v1::AbortRequest* request,
                                                v1::AbortResponse* response) {
  grpc::Status s = core_->Authenticate(ctx);
  if (!s.ok()) return Reply(ctx, s);
  if (absl::Status v = ValidateAbort(*request, core_->limits); !v.ok()) return Reply(ctx, ToGrpc(v));
  std::optional<RequestId> id = core_->registry.Find(request->request_id());
  if (id && core_->engine != nullptr) core_->engine->Abort(*id);
  response->set_found(id.has_value());
  return Reply(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ControlService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                       const v1::GetModelInfoRequest*,
                                                       v1::ModelInfo* info) {
  grpc::Status s = core_->Authenticate(ctx);
  if (!s.ok()) return Reply(ctx, s);
  if (!core_->ready.load(std::memory_order_acquire)) {
    return Reply(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "the model is loading"));
  }
  Model& m = *core_->model;
  const ModelConfig& c = m.config();
  info->set_path(m.path());
  info->set_architecture(c.architecture);
  info->set_vocab_size(c.vocab_size);
  info->set_hidden_size(c.hidden_size);
  info->set_num_layers(c.num_layers);
  info->set_num_heads(c.num_heads);
  info->set_num_kv_heads(c.num_kv_heads);
  info->set_head_dim(c.head_dim);
  info->set_max_model_len(core_->limits.max_model_len);
  info->set_device(m.backend().name());
  info->set_has_chat_template(m.RenderChat({{"user", "x"}}).ok());
  return Reply(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ControlService::GetServerInfo(grpc::CallbackServerContext* ctx,
                                                        const v1::GetServerInfoRequest*,
                                                        v1::ServerInfo* info) {
  grpc::Status s = core_->Authenticate(ctx);
  if (!s.ok()) return Reply(ctx, s);
  const bool ready = core_->ready.load(std::memory_order_acquire);
  info->set_ready(ready && !core_->draining.load());
  info->set_draining(core_->draining.load());
  info->set_version(kLilserveVersion);
  info->set_page_size(ready ? core_->model->backend().page_size() : core_->options->page_size);
  if (ready) {
    const EngineLoop::Load l = core_->engine->load();
    info->set_running(l.running);
    info->set_waiting(l.waiting);
    info->set_pages_used(l.pages_used);
    info->set_pages_free(l.pages_free);
    info->set_pages_cached(l.pages_cached);
    info->set_pages_total(l.pages_total);
  }
  return Reply(ctx, grpc::Status::OK);
}

}  // namespace lil
