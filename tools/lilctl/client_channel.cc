// File: tools/lilctl/client_channel.cc
#include "tools/lilctl/client_channel.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace lil::ctl {

void ClientFlags::Add(CLI::App* cmd, bool server_required) {
  auto* opt = cmd->add_option("--server", server, "lilserve address HOST:PORT");
  if (server_required) opt->capture_default_str();
  cmd->add_option("--token", token, "bearer token (default: $LILSERVE_TOKEN)");
  cmd->add_option("--tls-ca", tls_ca, "PEM root certificates; connect with TLS");
  cmd->add_option("--timeout", timeout_s, "per-call deadline in seconds (0: none)")
      ->capture_default_str();
}

std::shared_ptr<grpc::Channel> ClientFlags::Connect() const {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!tls_ca.empty()) {
    std::ifstream in(tls_ca);
    if (!in) {
      std::cerr << "lilctl: --tls-ca: cannot read \"" << tls_ca << "\"\n";
      throw CLI::RuntimeError(2);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ss.str();
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(server, creds, args);
}

void ClientFlags::Prepare(grpc::ClientContext* ctx) const {
  std::string t = token;
  if (t.empty()) {
    if (const char* env = std::getenv("LILSERVE_TOKEN")) t = env;
  }
  if (!t.empty()) ctx->AddMetadata("authorization", "Bearer " + t);
  if (timeout_s > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
  }
}

namespace {
const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    default: return "ERROR";
  }
}
}  // namespace

void FailRpc(const std::string& what, const grpc::Status& status) {
  std::cerr << "lilctl: " << what << ": " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  throw CLI::RuntimeError(1);
}

}  // namespace lil::ctl
