#pragma once
// A minimal loopback HTTP/1.1 sink for the export benchmark: binds 127.0.0.1 on a free
// port, reads each request (headers and Content-Length body), discards it and answers
// 200 with an empty body, on keep-alive connections. Nothing is recorded but a count.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace spyglass_bench {

class DiscardSink {
 public:
  DiscardSink() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind/listen");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~DiscardSink() {
    stopping_ = true;
    acceptor_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  DiscardSink(const DiscardSink&) = delete;
  DiscardSink& operator=(const DiscardSink&) = delete;

  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] std::uint64_t requests() const { return requests_.load(); }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) conns_.emplace_back([this, c] { serve(c); });
    }
  }

  // Appends what the connection has; false on EOF, error or stop.
  bool fill(int c, std::string& buf) {
    while (!stopping_) {
      pollfd p{c, POLLIN, 0};
      const int r = ::poll(&p, 1, 50);
      if (r == 0) continue;
      char tmp[65536];
      const ssize_t n = r < 0 ? -1 : ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  }

  void serve(int c) {
    static const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    std::string buf;
    for (;;) {
      std::size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(c, buf)) return (void)::close(c);
      }
      std::size_t length = 0;
      for (const char* name : {"Content-Length:", "content-length:"}) {
        const auto at = buf.find(name);
        if (at != std::string::npos && at < head_end)
          length = std::strtoul(buf.c_str() + at + 15, nullptr, 10);
      }
      buf.erase(0, head_end + 4);
      while (buf.size() < length) {
        if (!fill(c, buf)) return (void)::close(c);
      }
      buf.erase(0, length);
      ++requests_;
      if (::send(c, kOk.data(), kOk.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(kOk.size())) {
        return (void)::close(c);
      }
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> requests_{0};
  std::thread acceptor_;
  std::vector<std::thread> conns_;  // acceptor thread only, until joined
};

}  // namespace spyglass_bench
