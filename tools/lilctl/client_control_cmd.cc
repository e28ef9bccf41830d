// File: tools/lilctl/client_control_cmd.cc
// `lilctl health`, `lilctl info` and `lilctl abort ID`: small control-plane clients of a
// running lilserve (grpc.health.v1 and lilserve.v1.Control).
#include <condition_variable>
#include <iostream>
#include <mutex>

#include <grpcpp/generic/generic_stub.h>

#include "lilserve/v1/lilserve.grpc.pb.h"
#include "tools/lilctl/client_channel.h"
#include "tools/lilctl/command.h"

namespace lil::ctl {
namespace {
namespace v1 = ::lilserve::v1;

// grpc.health.v1 without its generated stubs: the messages are two tiny protos, encoded by
// hand (HealthCheckRequest{string service = 1}; HealthCheckResponse{enum status = 1}).
int HealthCheck(const ClientFlags& f, const std::string& service) {
  auto channel = f.Connect();
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  f.Prepare(&ctx);
  if (f.timeout_s <= 0) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (service.size() > 127) {  // one-byte length prefix below
    std::cerr << "lilctl health: --service must be at most 127 bytes\n";
    throw CLI::RuntimeError(2);
  }
  std::string req;
  if (!service.empty()) {
    req.push_back(0x0a);
    req.push_back(static_cast<char>(service.size()));
    req += service;
  }
  grpc::Slice slice(req);
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> l(mu);
                   status = s;
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  if (!status.ok()) FailRpc("health", status);
  std::vector<grpc::Slice> slices;
  out.Dump(&slices);
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  int value = 0;  // UNKNOWN; a default-valued field is absent on the wire
  if (bytes.size() >= 2 && bytes[0] == 0x08) value = static_cast<unsigned char>(bytes[1]);
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::cout << (value >= 0 && value < 4 ? kNames[value] : "UNKNOWN") << "\n";
  return value == 1 ? 0 : 3;
}

void Info(const ClientFlags& f) {
  auto stub = v1::Control::NewStub(f.Connect());
  v1::ServerInfo s;
  {
    grpc::ClientContext ctx;
    f.Prepare(&ctx);
    grpc::Status st = stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &s);
    if (!st.ok()) FailRpc("GetServerInfo", st);
  }
  std::cout << "server: lilserve " << s.version() << (s.ready() ? ", ready" : ", not ready")
            << (s.draining() ? ", draining" : "") << "\n"
            << "requests: " << s.running() << " running, " << s.waiting() << " waiting\n"
            << "kv pages: " << s.pages_used() << " used, " << s.pages_free() << " free, "
            << s.pages_cached() << " cached of " << s.pages_total() << " (" << s.page_size()
            << " tokens each)\n";
  if (!s.ready()) return;
  v1::ModelInfo m;
  grpc::ClientContext ctx;
  f.Prepare(&ctx);
  grpc::Status st = stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &m);
  if (!st.ok()) FailRpc("GetModelInfo", st);
  std::cout << "model: " << m.path() << " (" << m.architecture() << ", " << m.num_layers()
            << " layers, hidden " << m.hidden_size() << ", heads " << m.num_heads() << "/"
            << m.num_kv_heads() << ", vocab " << m.vocab_size() << ", max_model_len "
            << m.max_model_len() << ", device " << m.device()
            << (m.has_chat_template() ? ", chat template" : "") << ")\n";
}

void Abort(const ClientFlags& f, const std::string& id) {
  auto stub = v1::Control::NewStub(f.Connect());
  v1::AbortRequest req;
  req.set_request_id(id);
  v1::AbortResponse resp;
  grpc::ClientContext ctx;
  f.Prepare(&ctx);
  grpc::Status st = stub->Abort(&ctx, req, &resp);
  if (!st.ok()) FailRpc("Abort", st);
  std::cout << (resp.found() ? "aborted " : "not live (nothing to abort): ") << id << "\n";
}

CommandRegistrar reg([](CLI::App& app) {
  {
    auto f = std::make_shared<ClientFlags>();
    auto service = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand(
        "health", "Check a daemon's grpc.health.v1 status (exit 0 only when SERVING)");
    f->Add(cmd, true);
    cmd->add_option("--service", *service, "service name (default: the whole server)");
    cmd->callback([f, service] {
      const int rc = HealthCheck(*f, *service);
      if (rc != 0) throw CLI::RuntimeError(rc);
    });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    CLI::App* cmd = app.add_subcommand("info", "Print a daemon's load and model");
    f->Add(cmd, true);
    cmd->callback([f] { Info(*f); });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    auto id = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("abort", "Abort a live request by its request_id");
    f->Add(cmd, true);
    cmd->add_option("id", *id, "request_id")->required();
    cmd->callback([f, id] { Abort(*f, *id); });
  }
});

}  // namespace
}  // namespace lil::ctl
