// File: tools/lilctl/client_channel.h
// Flags and helpers shared by lilctl's client subcommands (generate --server, health, info,
// abort, bench): the channel to a lilserve daemon, with optional TLS and bearer token.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

namespace lil::ctl {

struct ClientFlags {
  std::string server = "127.0.0.1:50051";
  std::string token;    // bearer token (or $LILSERVE_TOKEN)
  std::string tls_ca;   // PEM roots; enables TLS
  double timeout_s = 0;  // per call; 0 is none

  // `server_required`: add --server as a required option (health/info/abort/bench).
  void Add(CLI::App* cmd, bool server_required);
  std::shared_ptr<grpc::Channel> Connect() const;  // prints and throws on a bad --tls-ca
  // Sets the token and deadline on a fresh context.
  void Prepare(grpc::ClientContext* ctx) const;
};

// Prints "lilctl: <what>: <code name>: <message>" and throws CLI::RuntimeError(1).
[[noreturn]] void FailRpc(const std::string& what, const grpc::Status& status);

}  // namespace lil::ctl
