// File: server/services.h
// The lilserve.v1 gRPC services on the callback API: Inference (Generate streams through a
// GenerateReactor; Tokenize) and Control (Abort, GetModelInfo, GetServerInfo). Unary calls
// answer inline: they only read snapshots and never wait on the engine.
#pragma once

#include "lilserve/v1/lilserve.grpc.pb.h"
#include "server/server_core.h"

namespace lil {

class InferenceService final : public lilserve::v1::Inference::CallbackService {
 public:
  explicit InferenceService(ServerCore* core) : core_(core) {}
  grpc::ServerWriteReactor<lilserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const lilserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx,
                                     const lilserve::v1::TokenizeRequest* request,
                                     lilserve::v1::TokenizeResponse* response) override;

 private:
  ServerCore* core_;
};

class ControlService final : public lilserve::v1::Control::CallbackService {
 public:
  explicit ControlService(ServerCore* core) : core_(core) {}
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx,
                                  const lilserve::v1::AbortRequest* request,
                                  lilserve::v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const lilserve::v1::GetModelInfoRequest* request,
                                         lilserve::v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* ctx,
                                          const lilserve::v1::GetServerInfoRequest* request,
                                          lilserve::v1::ServerInfo* response) override;

 private:
  ServerCore* core_;
};

inline constexpr char kLilserveVersion[] = "0.1.0";

}  // namespace lil
