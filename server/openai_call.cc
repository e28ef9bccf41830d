// File: server/openai_call.cc
#include "server/openai_call.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/log.h"
#include "server/openai_response.h"

namespace lil {
namespace {

int64_t NowMicros() { return SystemClock::Get()->NowMicros(); }

// poll() wakes on outputs and hang-ups; the timeout only bounds a missed wake-up.
constexpr int kPollTimeoutMs = 1000;

bool SameEndpoint(const sockaddr_storage& a, socklen_t len, const std::string& ip, int port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof(host), serv,
                  sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  return ip == host && port == std::atoi(serv);
}

}  // namespace

int FindConnectionSocket(const std::string& local_ip, int local_port, const std::string& remote_ip,
                         int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t peer_len = sizeof(peer), self_len = sizeof(self);
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
      continue;
    if (!SameEndpoint(peer, peer_len, remote_ip, remote_port)) continue;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&self), &self_len) != 0)
      continue;
    if (!SameEndpoint(self, self_len, local_ip, local_port)) continue;
    found = static_cast<int>(fd);
    break;
  }
  closedir(dir);
  return found;
}

// An eventfd the engine thread bumps after each output of the request.
struct OpenAiCall::Wakeup {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~Wakeup() {
    if (fd >= 0) close(fd);
  }
  void Notify() const {
    const uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
      // EAGAIN only when the counter is full: a wake-up is pending anyway.
    }
  }
  void Clear() const {
    uint64_t n = 0;
    if (fd >= 0 && read(fd, &n, sizeof(n)) < 0) {
      // EAGAIN: nothing pending.
    }
  }
};

OpenAiCall::OpenAiCall(ServerCore* core, int socket_fd)
    : core_(core),
      socket_fd_(socket_fd),
      arrival_micros_(NowMicros()),
      arrival_unix_s_(absl::ToUnixSeconds(absl::Now())) {}

OpenAiCall::~OpenAiCall() {
  if (stream_ && !final_taken_) {
    Cancel();
    // A cancelled request finishes at the engine's next step (EngineLoop::Stop finishes
    // every live one too).
    RequestOutput out;
    while (Next(&out)) {
    }
  }
  if (reserved_) core_->registry.Release(name_);
}

bool OpenAiCall::Start(const OpenAiRequest& request, const std::string& request_id,
                       OpenAiError* error) {
  auto fail = [&](const absl::Status& s) {
    core_->metrics->OnRejected(std::string(absl::StatusCodeToString(s.code())));
    *error = ToOpenAiError(s, &request);
    return false;
  };
  lilserve::v1::GenerateRequest generate = request.generate;
  generate.set_request_id(request_id);
  auto converted = ConvertRequest(generate, core_->limits, core_->codec);
  if (!converted.ok()) return fail(converted.status());
  SchedulerRequest req = std::move(*converted);
  monitor_mode_ = req.monitor.mode;
  name_ = request_id.empty() ? core_->registry.NewName() : request_id;
  absl::Status reserved = core_->registry.Reserve(name_);
  if (!reserved.ok()) return fail(reserved);
  reserved_ = true;
  req.arrival_micros = arrival_micros_;
  auto stream = core_->engine->Submit(std::move(req));
  if (!stream.ok()) return fail(stream.status());
  stream_ = std::move(*stream);
  queue_s_ = (NowMicros() - arrival_micros_) * 1e-6;
  core_->registry.Bind(name_, stream_->id());
  wakeup_ = std::make_shared<Wakeup>();
  stream_->SetNotifier([w = wakeup_] { w->Notify(); });
  return true;
}

bool OpenAiCall::PeerClosed() const {
  if (socket_fd_ < 0) return false;
  pollfd p{socket_fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) != 0) return true;
  if ((p.revents & POLLIN) == 0) return false;
  char c;
  const ssize_t n = recv(socket_fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void OpenAiCall::Wait() {
  pollfd fds[2] = {{wakeup_->fd, POLLIN, 0}, {socket_fd_, POLLRDHUP, 0}};
  // Only a hang-up of the socket matters (POLLHUP / POLLERR come unasked); not POLLIN, which a
  // client sending its next request early would keep raising.
  const nfds_t n = socket_fd_ >= 0 && !cancelled_ ? 2 : 1;
  if (poll(fds, n, kPollTimeoutMs) > 0 && (fds[0].revents & POLLIN) != 0) wakeup_->Clear();
  if (!cancelled_ && PeerClosed()) Cancel();
}

void OpenAiCall::Cancel() {
  if (cancelled_ || !stream_ || final_taken_) return;
  cancelled_ = true;
  core_->engine->Cancel(stream_->id());
}

bool OpenAiCall::Next(RequestOutput* merged) {
  *merged = RequestOutput();
  if (!stream_ || final_taken_) return false;
  RequestOutput out;
  while (!stream_->TryNext(&out)) Wait();
  int32_t new_tokens = 0;
  bool more = true;
  while (more) {
    new_tokens += static_cast<int32_t>(out.new_tokens.size());
    const bool finished = out.finished;
    MergeOutput(std::move(out), merged);
    more = !finished && stream_->TryNext(&out);
  }
  // Each engine step's output is a moment to notice a client that hung up.
  if (!merged->finished && !cancelled_ && PeerClosed()) Cancel();
  if (new_tokens > 0) timing_.OnTokens(core_->metrics, new_tokens, NowMicros());
  if (merged->finished) OnFinal(*merged);
  return true;
}

// As GenerateReactor::OnFinal: one RequestRecord per request, whatever its end (RequestTiming).
void OpenAiCall::OnFinal(const RequestOutput& out) {
  final_taken_ = true;
  error_ = stream_->error();
  const int64_t now = NowMicros();
  core_->metrics->OnRequest(timing_.Record(out, monitor_mode_, arrival_micros_, queue_s_, now));
  if (reserved_) core_->registry.Release(name_);
  reserved_ = false;
}

}  // namespace lil
