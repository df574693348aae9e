// The /metrics endpoint over HTTP: what it serves, that idle and slow clients cannot
// starve it, and fork(). civetweb's threads serve it: these tests carry the `threads`
// label.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>

#include "events.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "support.hpp"

namespace {

using spyglass::Event;
using spyglass::EventKind;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::kMs;
using spyglass::test::make_event;
using spyglass::test::parse_exposition;
using spyglass::test::sample;
using Clock = std::chrono::steady_clock;

/// A TCP connection to 127.0.0.1:port, closed when destroyed (-1 when it failed).
class Connection {
 public:
  explicit Connection(std::uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

std::string metrics_url(const PrometheusExporter& exp) {
  return "http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics";
}

TEST(PrometheusEndpoint, AScrapeIsAnsweredWhile50IdleConnectionsAreOpen) {
  PrometheusOptions o;  // the defaults are what is specified
  o.listen_address = "127.0.0.1:0";
  PrometheusExporter exp(o);
  exp.export_batch(std::vector<Event>{make_event(EventKind::function, "idle_test", kMs)});
  std::vector<std::unique_ptr<Connection>> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(std::make_unique<Connection>(exp.port()));
    ASSERT_GE(idle.back()->fd(), 0) << "connection " << i;
  }
  // The goal is 1 s; the bound checked is generous, for a loaded machine.
  const auto start = Clock::now();
  const auto r = spyglass::test::http_get(metrics_url(exp), 5000);
  const auto took = Clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(sample(parse_exposition(r.body),
                   R"(spyglass_events_total{kind="function",name="idle_test",status="ok"})"),
            1);
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(PrometheusEndpoint, SlowLorisClientsAreCutAfterTheRequestTimeout) {
  // One worker thread and three clients that send a header one byte at a time: each is
  // disconnected once request_timeout has passed since its connection, however steadily
  // it sends, so the scrape behind them is answered.
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  o.server_threads = 1;
  o.request_timeout = std::chrono::milliseconds(500);
  PrometheusExporter exp(o);
  constexpr int kClients = 3;
  std::atomic<int> cut{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> lorises;
  for (int c = 0; c < kClients; ++c) {
    lorises.emplace_back([&] {
      Connection conn(exp.port());
      const std::string header =
          "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(10'000, 'a');
      for (std::size_t i = 0; i < header.size() && !stop; ++i) {
        if (send(conn.fd(), &header[i], 1, MSG_NOSIGNAL) != 1) {
          ++cut;  // the server closed the connection
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // pacing: the slowness itself
      }
    });
  }
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Join() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } join{stop, lorises};

  const auto start = Clock::now();
  const auto r = spyglass::test::http_get(metrics_url(exp), 30000);
  const auto took = Clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.error;
  // At most (clients + 1) request timeouts in a row on the one worker; generous bound.
  EXPECT_LT(took, (kClients + 1) * o.request_timeout + std::chrono::seconds(5));
  // Every slow client is disconnected by the server, none finishes its request.
  EXPECT_TRUE(spyglass::test::wait_until([&] { return cut == kClients; }, std::chrono::seconds(60)));
}

TEST(PrometheusEndpoint, ServesMetricsWithApplicationMetricsAndNoExposerMetrics) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  PrometheusExporter exp(o);
  ASSERT_NE(exp.port(), 0);
  auto& family =
      prometheus::BuildCounter().Name("app_jobs_total").Help("Jobs done.").Register(*exp.registry());
  family.Add({{"queue", "default"}}).Increment(42);
  exp.export_batch(std::vector<Event>{make_event(EventKind::function, "served", kMs)});

  const auto r = spyglass::test::http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const auto m = parse_exposition(r.body);
  EXPECT_EQ(sample(m, R"(app_jobs_total{queue="default"})"), 42) << r.body;
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="served",status="ok"})"), 1);
  EXPECT_GT(sample(m, "process_resident_memory_bytes"), 0);  // not knowable exactly
  EXPECT_NE(exp.scrape().find("app_jobs_total"), std::string::npos);
  // prometheus-cpp's own exposer_* metrics (µs without unit suffix, Nan quantiles) are
  // not served.
  EXPECT_EQ(r.body.find("exposer_"), std::string::npos) << r.body;
  // Only /metrics is served.
  EXPECT_EQ(spyglass::test::http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/other").status,
            404);
}

/// Whether a TCP connection to 127.0.0.1:port is accepted into a listen queue.
bool connectable(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

TEST(PrometheusEndpoint, ForkedChildRecordsAfreshAndLeavesTheEndpointToTheParent) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  auto exp = std::make_unique<PrometheusExporter>(o);
  const std::uint16_t port = exp->port();
  ASSERT_NE(port, 0);
  exp->export_batch(std::vector<Event>{make_event(EventKind::function, "before_fork", kMs)});
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(60);  // a hang in the child fails the test instead of blocking it
    exp->after_fork_child();
    exp->export_batch(std::vector<Event>{make_event(EventKind::function, "in_child", kMs)});
    const auto m = parse_exposition(exp->scrape());
    const bool ok =
        sample(m, R"(spyglass_events_total{kind="function",name="in_child",status="ok"})") == 1 &&
        sample(m, R"(spyglass_events_total{kind="function",name="before_fork",status="ok"})") == -1 &&
        exp->port() == 0;
    const char result = ok ? 'y' : 'n';
    if (write(ready[1], &result, 1) != 1) _exit(3);
    char c = 0;
    if (read(release[0], &c, 1) != 1) _exit(4);  // alive until the parent has checked
    exp.reset();                                 // must not wait for the parent's threads
    _exit(ok ? 0 : 1);
  }
  close(ready[1]);
  close(release[0]);
  char result = 0;
  ASSERT_EQ(read(ready[0], &result, 1), 1);
  EXPECT_EQ(result, 'y');

  // The parent still serves what it recorded.
  const auto r = spyglass::test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(sample(parse_exposition(r.body),
                   R"(spyglass_events_total{kind="function",name="before_fork",status="ok"})"),
            1);
  // Once the parent closes its endpoint the port is closed, although the child lives
  // on: the child holds no copy of the listening socket.
  exp.reset();
  EXPECT_FALSE(connectable(port));

  const char go = 'x';
  EXPECT_EQ(write(release[1], &go, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child did not exit normally";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(ready[0]);
  close(release[1]);
}

}  // namespace
