// Pushes are bounded whatever the Pushgateway does: against a server started here that
// accepts and never answers, a closed port, and a server that reads slowly, a push fails
// within push_timeout, shutdown() and the destructor return within shutdown_timeout(), the
// failure is logged through the log hook and counted in a metric. The push timer and the
// servers are threads: these tests carry the `threads` label.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../support/log_capture.hpp"
#include "events.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/log.hpp"
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

/// A TCP server on 127.0.0.1 that accepts connections and never answers; with
/// `slow_reader` it also reads what they send, 256 bytes every 20 ms.
class HangingServer {
 public:
  explicit HangingServer(bool slow_reader) : slow_(slow_reader) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (slow_) {
      const int small = 4096;  // a small window, so the sender soon waits for the reader
      setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(listen_fd_, 16) != 0)
      throw std::runtime_error("HangingServer: cannot listen");
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~HangingServer() {
    stop_ = true;
    thread_.join();
    for (int fd : clients_) close(fd);
    close(listen_fd_);
  }
  HangingServer(const HangingServer&) = delete;
  HangingServer& operator=(const HangingServer&) = delete;

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int accepted() const { return accepted_; }
  [[nodiscard]] std::size_t bytes_read() const { return bytes_read_; }

 private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      if (slow_) {
        for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 20) < 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        const int c = accept(listen_fd_, nullptr, nullptr);
        if (c >= 0) {
          clients_.push_back(c);
          ++accepted_;
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & POLLIN) == 0) continue;
        char buf[256];
        const ssize_t n = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) bytes_read_ += static_cast<std::size_t>(n);
      }
      if (slow_) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the slowness itself
    }
  }

  bool slow_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> clients_;  // the server thread's only
  std::atomic<int> accepted_{0};
  std::atomic<std::size_t> bytes_read_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

using spyglass::test::LogCapture;

PrometheusOptions pushing_to(const std::string& url) {
  PrometheusOptions o;
  o.listen_address.clear();
  o.push_url = url;
  o.push_job = "bounded";
  o.push_instance = "test";
  o.push_interval = std::chrono::hours(1);  // only the pushes the test makes
  o.push_timeout = std::chrono::milliseconds(1000);
  return o;
}

/// An exposition of several MB that cannot sit in the socket buffers, made of few series
/// with long names, so that rendering it is quick even on a loaded machine.
std::vector<Event> large_batch(std::deque<std::string>& names) {
  std::vector<Event> batch;
  for (int i = 0; i < 100; ++i) {
    names.push_back(std::to_string(i) + "_" + std::string(2000, 'n'));
    batch.push_back(make_event(EventKind::function, names.back().c_str(), kMs));
  }
  return batch;
}

/// shutdown() of an exporter whose final push cannot succeed: within its bound, logged,
/// counted; then the destructor returns at once (nothing left to wait for).
void expect_bounded_failed_shutdown(const std::string& url, bool large) {
  LogCapture logs;
  PrometheusOptions o = pushing_to(url);
  o.max_series = 1'000'000;
  // The timeout covers rendering the exposition too, which takes a while for a large one
  // on a loaded machine: the slow reader must get some of it before the push gives up.
  if (large) o.push_timeout = std::chrono::seconds(3);
  auto exp = std::make_unique<PrometheusExporter>(o);
  std::deque<std::string> names;
  exp->export_batch(large ? large_batch(names)
                          : std::vector<Event>{make_event(EventKind::function, "f", kMs)});
  EXPECT_EQ(exp->shutdown_timeout(), o.push_timeout + std::chrono::seconds(1));

  const auto start = Clock::now();
  exp->shutdown();
  const auto took = Clock::now() - start;
  // Generous: the documented bound plus 2 s for a loaded machine.
  EXPECT_LT(took, exp->shutdown_timeout() + std::chrono::seconds(2));
  const auto c = exp->push_counters();
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.ok, 0u);
  EXPECT_EQ(c.last_status, -1);
  EXPECT_EQ(sample(parse_exposition(exp->scrape()), "spyglass_prometheus_push_failures_total"), 1);
  EXPECT_EQ(logs.warnings("prometheus", "push to " + url), 1u) << logs.text();

  const auto destroy = Clock::now();
  exp.reset();
  EXPECT_LT(Clock::now() - destroy, std::chrono::seconds(2));
}

TEST(PrometheusPush, AGatewayThatNeverAnswersFailsThePushWithinItsTimeout) {
  HangingServer server(false);
  expect_bounded_failed_shutdown(server.url(), false);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(PrometheusPush, AClosedPortFailsThePushAtOnce) {
  expect_bounded_failed_shutdown("http://127.0.0.1:" + std::to_string(spyglass::test::free_port()), false);
}

TEST(PrometheusPush, AGatewayThatReadsSlowlyFailsThePushWithinItsTimeout) {
  HangingServer server(true);
  expect_bounded_failed_shutdown(server.url(), true);
  EXPECT_EQ(server.accepted(), 1);
  // It did read, too slowly: more than the headers, less than the body (several MB).
  EXPECT_GT(server.bytes_read(), 1000u);
  EXPECT_LT(server.bytes_read(), 1'000'000u);  // it did read, too slowly: how much depends on timing
}

TEST(PrometheusPush, BeginShutdownCutsAPushInFlight) {
  HangingServer server(false);
  LogCapture logs;
  PrometheusOptions o = pushing_to(server.url());
  o.push_timeout = std::chrono::minutes(10);  // only the deadline can end it
  PrometheusExporter exp(o);
  std::atomic<bool> returned{false};
  std::thread pusher([&] {
    EXPECT_FALSE(exp.push());
    returned = true;
  });
  ASSERT_TRUE(spyglass::test::wait_until([&] { return server.accepted() == 1; }));
  const auto start = Clock::now();
  exp.begin_shutdown(start + std::chrono::milliseconds(200));
  pusher.join();
  EXPECT_TRUE(returned);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(200) + std::chrono::seconds(3));
  EXPECT_EQ(exp.push_counters().failed, 1u);
  EXPECT_EQ(logs.warnings("prometheus", "cut short by shutdown"), 1u);
  // The final push at shutdown() is past the deadline too: it fails at once.
  const auto shutdown_start = Clock::now();
  exp.shutdown();
  EXPECT_LT(Clock::now() - shutdown_start, std::chrono::seconds(3));
  EXPECT_EQ(exp.push_counters().failed, 2u);
}

TEST(PrometheusPush, CollectorShutdownIsBoundedByTheExportersTimeout) {
  HangingServer server(false);
  LogCapture logs;
  spyglass::Collector collector;
  PrometheusOptions o = pushing_to(server.url());
  o.collector = &collector;
  auto exp = std::make_shared<PrometheusExporter>(o);
  collector.add_exporter(exp);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(collector.enqueue(make_event(EventKind::function, "via", kMs)));
  ASSERT_TRUE(collector.flush(std::chrono::seconds(60)));

  const auto start = Clock::now();
  collector.shutdown();
  EXPECT_LT(Clock::now() - start, exp->shutdown_timeout() + std::chrono::seconds(2));
  EXPECT_EQ(exp->push_counters().failed, 1u);
  EXPECT_EQ(logs.warnings("prometheus", "push to " + server.url()), 1u);
  // The events were delivered to the exporter before it shut down.
  const auto counters = collector.exporter_counters().at(0);
  EXPECT_EQ(counters.sent, 100u);
  EXPECT_EQ(counters.produced, 100u);
}

TEST(PrometheusPush, APeriodicPushInFlightDoesNotDelayShutdown) {
  HangingServer server(false);
  LogCapture logs;
  PrometheusOptions o = pushing_to(server.url());
  o.push_interval = std::chrono::milliseconds(10);
  o.push_timeout = std::chrono::seconds(3);  // the first periodic push is still in flight below
  auto exp = std::make_unique<PrometheusExporter>(o);
  ASSERT_TRUE(spyglass::test::wait_until([&] { return server.accepted() >= 1; }));
  // A periodic push hangs now; shutdown abandons it and makes the final push (which
  // hangs as well) within one push_timeout, not two.
  const auto start = Clock::now();
  exp->shutdown();
  EXPECT_LT(Clock::now() - start, exp->shutdown_timeout() + std::chrono::seconds(2));
  EXPECT_GE(logs.warnings("prometheus", "abandoned at shutdown"), 1u);
  EXPECT_GE(logs.warnings("prometheus", "timed out"), 1u);
}

}  // namespace
