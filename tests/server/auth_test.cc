// File: tests/server/auth_test.cc
// Bearer-token auth on every RPC of lilserve.v1: the real services on an in-process gRPC
// server (no model: the server is not ready), called through real stubs. Without a token,
// with a wrong one or with a prefix of the right one every method answers UNAUTHENTICATED;
// with the right one the call gets past auth (UNAVAILABLE: not ready, or OK). The test walks
// the .proto's service descriptors, so a new RPC without a case here fails it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>

#include "server/services.h"

namespace lil {
namespace {
namespace v1 = ::lilserve::v1;

using Call = std::function<grpc::Status(grpc::ClientContext*)>;

class AuthTest : public ::testing::Test {
 protected:
  void Start(const std::string& token) {
    options_.auth_token = token;
    metrics_ = std::make_unique<Metrics>(MetricsOptions{});
    core_.options = &options_;
    core_.metrics = metrics_.get();
    inference_ = std::make_unique<InferenceService>(&core_);
    control_ = std::make_unique<ControlService>(&core_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(inference_.get());
    b.RegisterService(control_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port, 0);
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                  grpc::InsecureChannelCredentials());
    inference_stub_ = v1::Inference::NewStub(ch);
    control_stub_ = v1::Control::NewStub(ch);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Every method of both services, by full name.
  std::map<std::string, Call> Calls() {
    std::map<std::string, Call> calls;
    calls["lilserve.v1.Inference.Generate"] = [this](grpc::ClientContext* ctx) {
      v1::GenerateRequest req;
      req.set_prompt("hello");
      auto reader = inference_stub_->Generate(ctx, req);
      v1::GenerateResponse r;
      while (reader->Read(&r)) {
      }
      return reader->Finish();
    };
    calls["lilserve.v1.Inference.Tokenize"] = [this](grpc::ClientContext* ctx) {
      v1::TokenizeRequest req;
      req.set_text("hello");
      v1::TokenizeResponse r;
      return inference_stub_->Tokenize(ctx, req, &r);
    };
    calls["lilserve.v1.Control.Abort"] = [this](grpc::ClientContext* ctx) {
      v1::AbortRequest req;
      req.set_request_id("some-request");
      v1::AbortResponse r;
      return control_stub_->Abort(ctx, req, &r);
    };
    calls["lilserve.v1.Control.GetModelInfo"] = [this](grpc::ClientContext* ctx) {
      v1::ModelInfo r;
      return control_stub_->GetModelInfo(ctx, v1::GetModelInfoRequest(), &r);
    };
    calls["lilserve.v1.Control.GetServerInfo"] = [this](grpc::ClientContext* ctx) {
      v1::ServerInfo r;
      return control_stub_->GetServerInfo(ctx, v1::GetServerInfoRequest(), &r);
    };
    return calls;
  }

  static std::vector<std::string> ProtoMethods() {
    std::vector<std::string> names;
    for (const auto* service : {v1::Inference::service_full_name(), v1::Control::service_full_name()}) {
      const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
      EXPECT_NE(d, nullptr) << service;
      if (d == nullptr) continue;
      for (int i = 0; i < d->method_count(); ++i) names.push_back(d->method(i)->full_name());
    }
    return names;
  }

  static grpc::Status Run(const Call& call, const char* authorization) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (authorization != nullptr) ctx.AddMetadata("authorization", authorization);
    return call(&ctx);
  }

  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  ServerCore core_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<ControlService> control_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Inference::Stub> inference_stub_;
  std::unique_ptr<v1::Control::Stub> control_stub_;
};

TEST_F(AuthTest, EveryRpcRequiresTheToken) {
  Start("s3cret");
  auto calls = Calls();
  const auto methods = ProtoMethods();
  ASSERT_EQ(methods.size(), 5u);
  for (const std::string& m : methods) {
    SCOPED_TRACE(m);
    ASSERT_TRUE(calls.contains(m)) << m << " has no auth case in this test";
    const Call& call = calls[m];
    for (const char* bad : {static_cast<const char*>(nullptr), "Bearer wrong", "Bearer s3cre",
                            "Bearer s3cretX", "s3cret", "bearer s3cret", ""}) {
      grpc::Status s = Run(call, bad);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << "authorization=" << (bad ? bad : "(none)") << ": " << s.error_message();
    }
    grpc::Status ok = Run(call, "Bearer s3cret");
    EXPECT_NE(ok.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ok.error_message();
    EXPECT_TRUE(ok.ok() || ok.error_code() == grpc::StatusCode::UNAVAILABLE)
        << ok.error_code() << " " << ok.error_message();
  }
}

TEST_F(AuthTest, NoTokenConfiguredMeansOpen) {
  Start("");
  for (auto& [name, call] : Calls()) {
    SCOPED_TRACE(name);
    grpc::Status s = Run(call, nullptr);
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
}

TEST_F(AuthTest, UnaryLimitsNameTheField) {
  Start("");
  grpc::ClientContext ctx;
  v1::AbortRequest req;
  req.set_request_id(std::string(129, 'x'));
  v1::AbortResponse r;
  grpc::Status s = control_stub_->Abort(&ctx, req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("request_id must be at most 128 bytes, got 129"));
}

}  // namespace
}  // namespace lil
