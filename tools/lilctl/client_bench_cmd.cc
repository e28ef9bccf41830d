// File: tools/lilctl/client_bench_cmd.cc
// `lilctl bench`: a load generator. N requests over C concurrent streams against a lilserve
// daemon (--server, gRPC), its OpenAI-compatible HTTP API (--http URL: streamed
// /v1/completions, server-sent events, one connection per request) or, with --in-process
// MODEL, an EngineLoop in this process with the same requests, so the differences are the
// server's overhead (gRPC + reactor + proto, or HTTP + JSON + SSE).
// Prompt and output lengths are uniform in [min, max]; prompts are random token ids and
// outputs ignore EOS, so every run generates exactly the same number of tokens.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "engine/engine_loop.h"
#include "lilserve/v1/lilserve.grpc.pb.h"
#include "tools/lilctl/client_channel.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/model_flags.h"

namespace lil::ctl {
namespace {
namespace v1 = ::lilserve::v1;
using Clock = std::chrono::steady_clock;

struct BenchFlags {
  ClientFlags client;
  ModelFlags model;
  bool in_process = false;
  std::string http;  // OpenAI API base URL, http://HOST:PORT
  int32_t requests = 32, concurrency = 8;
  int32_t prompt_min = 32, prompt_max = 128, output_min = 32, output_max = 64;
  int32_t max_running_seqs = 64;
  std::string sparse_mode, monitor_mode;
  int32_t sparse_budget_tokens = 0, monitor_interval_tokens = 0, monitor_min_gain_bytes = -1;
  uint64_t seed = 1;
  bool progress = true;
};

struct Spec {
  std::vector<int32_t> prompt;
  int32_t max_tokens = 0;
};

struct Result {
  double ttft = -1, e2e = 0;
  std::vector<double> itl;  // per token after the first
  int32_t tokens = 0, saved = 0;
  std::string reason;
  bool ok = true;
};

// Prompt ids are drawn from [1000, min(20000, vocab)) — ordinary vocabulary, no specials —
// where `vocab` is the model's when known (in-process), else the default model's.
std::vector<Spec> MakeSpecs(const BenchFlags& f, int32_t vocab) {
  std::mt19937_64 rng(f.seed);
  auto uni = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, std::max(lo, hi))(rng);
  };
  std::vector<Spec> specs(f.requests);
  for (Spec& s : specs) {
    s.prompt.resize(uni(f.prompt_min, f.prompt_max));
    const int32_t hi = std::min(20000, vocab - 1), lo = std::min(1000, hi / 2);
    for (int32_t& t : s.prompt) t = uni(lo, hi);
    s.max_tokens = uni(f.output_min, f.output_max);
  }
  return specs;
}

// Times tokens as they arrive: the first sets TTFT, later ones add inter-token gaps.
struct Timer {
  Clock::time_point start = Clock::now(), last;
  void Tokens(Result& r, int32_t n) {
    if (n <= 0) return;
    const auto now = Clock::now();
    if (r.ttft < 0) {
      r.ttft = std::chrono::duration<double>(now - start).count();
      n -= 1;
      r.tokens += 1;
    } else {
      const double gap = std::chrono::duration<double>(now - last).count() / n;
      for (int i = 0; i < n; ++i) r.itl.push_back(gap);
    }
    r.tokens += n;
    last = now;
  }
};

Result RunRemote(const BenchFlags& f, v1::Inference::Stub& stub, const Spec& s) {
  v1::GenerateRequest req;
  for (int32_t t : s.prompt) req.mutable_token_ids()->add_ids(t);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stopping()->set_max_tokens(s.max_tokens);
  req.mutable_stopping()->set_ignore_eos(true);
  static const std::map<std::string, v1::SparseMode> kSparse = {
      {"dense", v1::DENSE}, {"sink", v1::SINK}, {"quest", v1::QUEST}, {"h2o", v1::H2O}};
  static const std::map<std::string, v1::MonitorMode> kMonitor = {
      {"off", v1::OFF}, {"enforce", v1::ENFORCE}, {"shadow", v1::SHADOW}, {"conclude", v1::CONCLUDE}};
  if (!f.sparse_mode.empty()) req.mutable_sparse()->set_mode(kSparse.at(f.sparse_mode));
  if (f.sparse_budget_tokens > 0) req.mutable_sparse()->set_budget_tokens(f.sparse_budget_tokens);
  if (!f.monitor_mode.empty()) req.mutable_monitor()->set_mode(kMonitor.at(f.monitor_mode));
  if (f.monitor_interval_tokens > 0) req.mutable_monitor()->set_interval_tokens(f.monitor_interval_tokens);
  if (f.monitor_min_gain_bytes >= 0) req.mutable_monitor()->set_min_gain_bytes(f.monitor_min_gain_bytes);
  Result r;
  Timer timer;
  grpc::ClientContext ctx;
  f.client.Prepare(&ctx);
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) timer.Tokens(r, resp.chunk().token_ids_size());
    if (resp.has_finished()) {
      r.reason = v1::FinishReason_Name(resp.finished().reason());
      r.saved = resp.finished().usage().tokens_saved();
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    r.ok = false;
    r.reason = "rpc:" + std::to_string(st.error_code());
  }
  r.e2e = std::chrono::duration<double>(Clock::now() - timer.start).count();
  return r;
}

// --http: one streamed /v1/completions per connection (Connection: close), read as SSE.
// Plain HTTP/1.1 over a socket: the client's cost stays small and visible.
class HttpStream {
 public:
  ~HttpStream() {
    if (fd_ >= 0) close(fd_);
  }
  // Connects and sends; false with `error` set.
  bool Send(const std::string& host, const std::string& port, double timeout_s,
            const std::string& head, const std::string& body, std::string* error) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0) {
      *error = std::string("resolve ") + host + ": " + gai_strerror(e);
      return false;
    }
    for (addrinfo* a = res; a != nullptr && fd_ < 0; a = a->ai_next) {
      fd_ = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd_ >= 0 && connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
        close(fd_);
        fd_ = -1;
      }
    }
    freeaddrinfo(res);
    if (fd_ < 0) {
      *error = "connect " + host + ":" + port + " failed";
      return false;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (timeout_s > 0) {
      timeval tv{static_cast<time_t>(timeout_s),
                 static_cast<suseconds_t>((timeout_s - static_cast<int64_t>(timeout_s)) * 1e6)};
      setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    const std::string req = head + body;
    for (size_t sent = 0; sent < req.size();) {
      const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        *error = "send failed";
        return false;
      }
      sent += n;
    }
    return true;
  }
  // Calls `on_event` with each SSE event's data; returns the HTTP status (0: no response).
  int Read(const std::function<void(const std::string&)>& on_event, std::string* body) {
    std::string raw, decoded;
    bool head_done = false, chunked = false, eof = false;
    int status = 0;
    size_t chunk_left = 0;  // chunked: bytes of the current chunk still to take
    bool in_chunk = false;
    char buf[16384];
    while (!eof) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      raw.append(buf, n);
      if (!head_done) {
        const size_t end = raw.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        const std::string head = raw.substr(0, end);
        if (head.size() > 12) status = std::atoi(head.c_str() + 9);  // "HTTP/1.1 200"
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        chunked = lower.find("transfer-encoding: chunked") != std::string::npos;
        raw.erase(0, end + 4);
        head_done = true;
      }
      if (!chunked) {
        decoded += raw;
        raw.clear();
      }
      while (chunked && !eof) {
        if (!in_chunk) {
          const size_t eol = raw.find("\r\n");
          if (eol == std::string::npos) break;
          chunk_left = std::strtoul(raw.substr(0, eol).c_str(), nullptr, 16);
          raw.erase(0, eol + 2);
          if (chunk_left == 0) eof = true;
          in_chunk = true;
        } else {
          if (raw.size() < chunk_left + 2) break;
          decoded.append(raw, 0, chunk_left);
          raw.erase(0, chunk_left + 2);
          in_chunk = false;
        }
      }
      if (status != 200) continue;
      for (size_t end; (end = decoded.find("\n\n")) != std::string::npos;) {
        std::string ev = decoded.substr(0, end);
        decoded.erase(0, end + 2);
        if (ev.rfind("data: ", 0) == 0) on_event(ev.substr(6));
      }
    }
    *body = decoded;
    return status;
  }

 private:
  int fd_ = -1;
};

Result RunHttp(const BenchFlags& f, const std::string& host, const std::string& port,
               const Spec& s) {
  nlohmann::json req = {{"prompt", s.prompt},      {"max_tokens", s.max_tokens},
                        {"temperature", 0},        {"ignore_eos", true},
                        {"stream", true},          {"stream_options", {{"include_usage", true}}},
                        {"return_token_ids", true}};
  if (!f.sparse_mode.empty()) req["sparse"]["mode"] = f.sparse_mode;
  if (f.sparse_budget_tokens > 0) req["sparse"]["budget_tokens"] = f.sparse_budget_tokens;
  if (!f.monitor_mode.empty()) req["monitor"]["mode"] = f.monitor_mode;
  if (f.monitor_interval_tokens > 0) req["monitor"]["interval_tokens"] = f.monitor_interval_tokens;
  if (f.monitor_min_gain_bytes >= 0) req["monitor"]["min_gain_bytes"] = f.monitor_min_gain_bytes;
  const std::string body = req.dump();
  std::string token = f.client.token;
  if (token.empty() && std::getenv("LILSERVE_TOKEN") != nullptr)
    token = std::getenv("LILSERVE_TOKEN");
  std::string head = "POST /v1/completions HTTP/1.1\r\nHost: " + host + ":" + port +
                     "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                     "Connection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n";
  if (!token.empty()) head += "Authorization: Bearer " + token + "\r\n";
  head += "\r\n";
  Result r;
  Timer timer;
  HttpStream http;
  std::string error, rest;
  if (!http.Send(host, port, f.client.timeout_s, head, body, &error)) {
    r.ok = false;
    r.reason = error;
    return r;
  }
  const int status = http.Read(
      [&](const std::string& data) {
        if (data == "[DONE]") return;
        const nlohmann::json ev = nlohmann::json::parse(data, nullptr, false);
        if (ev.is_discarded() || ev.contains("error")) {
          r.ok = false;
          r.reason = "sse error";
          return;
        }
        if (ev.contains("choices") && ev["choices"].is_array() && !ev["choices"].empty()) {
          const nlohmann::json& c = ev["choices"][0];
          if (c.contains("token_ids")) timer.Tokens(r, static_cast<int32_t>(c["token_ids"].size()));
        }
        if (ev.contains("lilserve")) {
          std::string reason = ev["lilserve"].value("finish_reason", "");
          std::transform(reason.begin(), reason.end(), reason.begin(), ::toupper);
          r.reason = reason;  // the gRPC names: LENGTH, EARLY_STOP, ...
        }
        if (ev.contains("usage") && ev["usage"].is_object())
          r.saved = ev["usage"].value("tokens_saved", 0);
      },
      &rest);
  if (status != 200) {
    r.ok = false;
    r.reason = "http:" + std::to_string(status);
  } else if (r.reason.empty() && r.ok) {
    r.ok = false;
    r.reason = "no finish";
  }
  r.e2e = std::chrono::duration<double>(Clock::now() - timer.start).count();
  return r;
}

Result RunLocal(const BenchFlags& f, EngineLoop& loop, const Spec& s) {
  SchedulerRequest req;
  req.prompt = s.prompt;
  req.sampling.temperature = 0;
  req.stopping.max_tokens = s.max_tokens;
  req.stopping.ignore_eos = true;
  Result r;
  Timer timer;
  auto stream = loop.Submit(std::move(req));
  if (!stream.ok()) {
    r.ok = false;
    r.reason = std::string(stream.status().message());
    return r;
  }
  RequestOutput out;
  while ((*stream)->Next(&out)) {
    timer.Tokens(r, static_cast<int32_t>(out.new_tokens.size()));
    if (out.finished) {
      r.reason = std::string(FinishReasonName(out.finish_reason));
      r.saved = out.usage.tokens_saved;
      break;
    }
  }
  r.e2e = std::chrono::duration<double>(Clock::now() - timer.start).count();
  return r;
}

// User + system CPU seconds of this process so far (all threads).
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()));
  return v[i];
}

void Report(const BenchFlags& f, const std::vector<Result>& results, double wall, double cpu) {
  std::vector<double> ttft, itl, e2e;
  int64_t tokens = 0, saved = 0, failed = 0;
  std::map<std::string, int> reasons;
  for (const Result& r : results) {
    if (!r.ok) ++failed;
    if (r.ttft >= 0) ttft.push_back(r.ttft);
    itl.insert(itl.end(), r.itl.begin(), r.itl.end());
    e2e.push_back(r.e2e);
    tokens += r.tokens;
    saved += r.saved;
    ++reasons[r.reason];
  }
  auto ms = [](double s) { return s * 1e3; };
  std::cout << std::fixed << std::setprecision(1);
  const std::string target = f.in_process      ? "in-process EngineLoop (" + f.model.model + ")"
                             : !f.http.empty() ? "OpenAI HTTP API " + f.http
                                               : "gRPC " + f.client.server;
  std::cout << "target: " << target << "\nrequests " << results.size() << ", concurrency "
            << f.concurrency << ", failed " << failed << ", wall " << wall << " s\n"
            << "throughput: " << tokens / wall << " output tok/s, " << std::setprecision(2)
            << results.size() / wall << " req/s\n"
            << std::setprecision(1) << "                p50      p90      p99   (ms)\n";
  auto row = [&](const char* name, const std::vector<double>& v) {
    std::cout << std::left << std::setw(12) << name << std::right << std::setw(9) << ms(Pct(v, 50))
              << std::setw(9) << ms(Pct(v, 90)) << std::setw(9) << ms(Pct(v, 99)) << "\n";
  };
  row("ttft", ttft);
  row("itl", itl);
  row("e2e", e2e);
  std::cout << "output tokens " << tokens << ", tokens saved " << saved << "; finish:";
  for (const auto& [k, v] : reasons) std::cout << " " << k << "=" << v;
  std::cout << "\n" << std::setprecision(3) << "cpu of this process: " << cpu << " s ("
            << (tokens > 0 ? cpu / tokens * 1e3 : 0.0) << " ms per output token)\n";
  if (failed > 0) throw CLI::RuntimeError(1);
}

void Run(const BenchFlags& f) {
  std::vector<Spec> specs;
  int32_t vocab = 49152;  // the default model's (SmolLM2); the daemon rejects ids outside its own
  std::unique_ptr<Model> model;
  std::unique_ptr<EngineLoop> loop;
  std::unique_ptr<v1::Inference::Stub> stub;
  std::string http_host, http_port;
  if (!f.http.empty()) {
    // http://HOST:PORT[/...]; HTTPS needs a TLS client lilctl does not link.
    const std::string prefix = "http://";
    const std::string rest =
        f.http.substr(0, prefix.size()) == prefix ? f.http.substr(prefix.size()) : "";
    const std::string authority = rest.substr(0, rest.find('/'));
    const size_t colon = authority.rfind(':');
    if (authority.empty() || colon == std::string::npos || colon + 1 == authority.size()) {
      std::cerr << "lilctl bench: --http must be http://HOST:PORT (plain HTTP), got \"" << f.http
                << "\"\n";
      throw CLI::RuntimeError(2);
    }
    http_host = authority.substr(0, colon);
    http_port = authority.substr(colon + 1);
  } else if (f.in_process) {
    model = f.model.LoadOrDie();
    vocab = model->config().vocab_size;
    EngineLoopOptions o;
    o.scheduler.max_running_seqs = f.max_running_seqs;
    loop = std::make_unique<EngineLoop>(model.get(), o);
    if (absl::Status s = loop->Start(); !s.ok()) {
      std::cerr << "lilctl: " << s.message() << "\n";
      throw CLI::RuntimeError(1);
    }
  } else {
    stub = v1::Inference::NewStub(f.client.Connect());
  }
  specs = MakeSpecs(f, vocab);
  std::vector<Result> results(specs.size());
  std::atomic<int32_t> next{0}, done{0};
  std::atomic<int64_t> tokens{0};
  const double cpu0 = ProcessCpuSeconds();
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int32_t w = 0; w < f.concurrency; ++w) {
    workers.emplace_back([&] {
      for (int32_t i = next++; i < static_cast<int32_t>(specs.size()); i = next++) {
        results[i] = f.in_process      ? RunLocal(f, *loop, specs[i])
                     : !f.http.empty() ? RunHttp(f, http_host, http_port, specs[i])
                                       : RunRemote(f, *stub, specs[i]);
        tokens += results[i].tokens;
        ++done;
      }
    });
  }
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    while (f.progress && !finished) {
      const double t = std::chrono::duration<double>(Clock::now() - start).count();
      std::cerr << "\r[" << done << "/" << specs.size() << " requests, " << tokens << " tokens, "
                << std::fixed << std::setprecision(1) << (t > 0 ? tokens / t : 0) << " tok/s, "
                << t << " s]   " << std::flush;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  for (auto& w : workers) w.join();
  finished = true;
  progress.join();
  if (f.progress) std::cerr << "\n";
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = ProcessCpuSeconds() - cpu0;
  if (loop) loop->Stop();
  Report(f, results, wall, cpu);
}

CommandRegistrar reg([](CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Load generator: N requests over C concurrent streams; TTFT/ITL/e2e percentiles");
  f->client.Add(cmd, true);
  cmd->add_flag("--in-process", f->in_process,
                "run the same requests on an in-process EngineLoop (--model) instead of --server");
  cmd->add_option("--http", f->http,
                  "bench the OpenAI HTTP API at this URL (http://HOST:PORT, lilserve --http-port) "
                  "instead of gRPC --server");
  f->model.Add(cmd);
  cmd->add_option("-n,--requests", f->requests, "requests in all")->capture_default_str();
  cmd->add_option("-c,--concurrency", f->concurrency, "concurrent streams")->capture_default_str();
  cmd->add_option("--prompt-tokens-min", f->prompt_min)->capture_default_str();
  cmd->add_option("--prompt-tokens-max", f->prompt_max)->capture_default_str();
  cmd->add_option("--output-tokens-min", f->output_min)->capture_default_str();
  cmd->add_option("--output-tokens-max", f->output_max)->capture_default_str();
  cmd->add_option("--max-running-seqs", f->max_running_seqs, "--in-process: batch limit")
      ->capture_default_str();
  cmd->add_option("--sparse-mode", f->sparse_mode, "dense, sink, quest, h2o")
      ->check(CLI::IsMember({"dense", "sink", "quest", "h2o"}));
  cmd->add_option("--sparse-budget-tokens", f->sparse_budget_tokens);
  cmd->add_option("--monitor-mode", f->monitor_mode, "off, enforce, shadow, conclude")
      ->check(CLI::IsMember({"off", "enforce", "shadow", "conclude"}));
  cmd->add_option("--monitor-interval-tokens", f->monitor_interval_tokens);
  cmd->add_option("--monitor-min-gain-bytes", f->monitor_min_gain_bytes);
  cmd->add_option("--seed", f->seed, "request lengths and prompts")->capture_default_str();
  cmd->add_option("--progress", f->progress, "print progress on stderr")->capture_default_str();
  cmd->callback([f] {
    if (f->requests <= 0 || f->concurrency <= 0) {
      std::cerr << "lilctl bench: --requests and --concurrency must be > 0\n";
      throw CLI::RuntimeError(2);
    }
    if (f->in_process && !f->http.empty()) {
      std::cerr << "lilctl bench: --in-process and --http exclude each other\n";
      throw CLI::RuntimeError(2);
    }
    Run(*f);
  });
});

}  // namespace
}  // namespace lil::ctl
