#pragma once
// A real cpp-httplib server for the adapter tests.

#include <gtest/gtest.h>
#include <httplib.h>

#include <string>
#include <thread>

namespace spyglass::test {

/// A real cpp-httplib server on 127.0.0.1, on a port the kernel picks, listening on its
/// own thread until the object is destroyed.
class LoopbackServer {
 public:
  explicit LoopbackServer(::httplib::Server& server) : server_(server) {
    port_ = server_.bind_to_any_port("127.0.0.1");
    EXPECT_GT(port_, 0);
    // The socket listens from bind_to_any_port() on: connections made before the thread
    // accepts wait in the backlog, so no readiness wait is needed.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~LoopbackServer() {
    server_.stop();
    thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  ::httplib::Server& server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace spyglass::test
