#pragma once
// A loopback HTTP/1.1 server for the OTLP tests: binds 127.0.0.1 on a free port, records
// every request and answers as told (a status with headers, a hang, or a closed
// connection); it can also read request bodies slowly.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace spyglass_test {

/// gunzip; throws on a malformed stream.
inline std::string gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw std::runtime_error("not a gzip stream");
    }
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

/// One recorded request.
struct Request {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  ///< Names lowercased.
  std::string body;                            ///< As received.
  std::chrono::steady_clock::time_point at;
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  /// The body with its Content-Encoding undone.
  [[nodiscard]] std::string payload() const {
    return header("content-encoding") == "gzip" ? gunzip(body) : body;
  }
};

/// How to answer a request.
struct Reply {
  enum Action { respond, hang, close } action = respond;
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/x-protobuf";
};

class Receiver {
 public:
  /// `record_bodies` false keeps only the count (for benchmarks).
  explicit Receiver(bool record_bodies = true) : record_bodies_(record_bodies) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind/listen");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~Receiver() { stop(); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /// From now on reads at most `bytes` every `every` from each connection: a receiver
  /// that takes request bodies in slowly.
  void set_read_rate(std::size_t bytes, std::chrono::milliseconds every) {
    std::lock_guard lk(mu_);
    read_bytes_ = bytes;
    read_every_ = every;
  }

  /// The reply used when no queued one is left.
  void set_default(Reply r) {
    std::lock_guard lk(mu_);
    default_ = std::move(r);
  }
  /// Queues a reply for the next request.
  void push(Reply r) {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(r));
  }
  /// The reply used for requests to `path` when no queued one for it is left. Replies
  /// for a path come before the ones above.
  void set_default(const std::string& path, Reply r) {
    std::lock_guard lk(mu_);
    path_default_[path] = std::move(r);
  }
  /// Queues a reply for the next request to `path`.
  void push(const std::string& path, Reply r) {
    std::lock_guard lk(mu_);
    path_queue_[path].push_back(std::move(r));
  }

  [[nodiscard]] std::vector<Request> requests() const {
    std::lock_guard lk(mu_);
    return requests_;
  }
  [[nodiscard]] std::size_t count() const {
    std::lock_guard lk(mu_);
    return count_;
  }
  /// Connections accepted so far.
  [[nodiscard]] std::size_t connections() const {
    std::lock_guard lk(mu_);
    return connections_;
  }
  /// The requests to `path`.
  [[nodiscard]] std::vector<Request> requests(const std::string& path) const {
    std::lock_guard lk(mu_);
    std::vector<Request> v;
    for (const Request& r : requests_) {
      if (r.path == path) v.push_back(r);
    }
    return v;
  }
  /// Waits until at least `n` requests arrived.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return count_ >= n; });
  }

  void stop() {
    if (stopping_.exchange(true)) return;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard lk(mu_);
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
    ::close(fd_);
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lk(mu_);
      ++connections_;
      conns_.emplace_back([this, c] { serve(c); });
    }
  }

  // Reads more bytes into buf; false on EOF, error or stop.
  bool fill(int c, std::string& buf) {
    while (!stopping_) {
      pollfd p{c, POLLIN, 0};
      const int r = ::poll(&p, 1, 50);
      if (r == 0) continue;
      if (r < 0) return false;
      std::size_t limit;
      std::chrono::milliseconds every;
      {
        std::lock_guard lk(mu_);
        limit = read_bytes_;
        every = read_every_;
      }
      char tmp[65536];
      const ssize_t n = ::recv(c, tmp, std::min(sizeof tmp, limit), 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<std::size_t>(n));
      // A slow reader: the next read comes after `every` (or at stop()).
      for (auto until = std::chrono::steady_clock::now() + every;
           !stopping_ && std::chrono::steady_clock::now() < until;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return true;
    }
    return false;
  }

  static void send_all(int c, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

  void serve(int c) {
    std::string buf;
    for (;;) {
      std::size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(c, buf)) {
          ::close(c);
          return;
        }
      }
      Request req;
      req.at = std::chrono::steady_clock::now();
      const std::string head = buf.substr(0, head_end);
      std::size_t line_end = head.find("\r\n");
      const std::string first = head.substr(0, line_end);
      const auto sp1 = first.find(' ');
      const auto sp2 = first.find(' ', sp1 + 1);
      req.method = first.substr(0, sp1);
      req.path = first.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        std::size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        const std::string line = head.substr(pos, e - pos);
        pos = e + 2;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon);
        for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        req.headers[k] = v;
      }
      const std::size_t length =
          req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
      buf.erase(0, head_end + 4);
      while (buf.size() < length) {
        if (!fill(c, buf)) {
          ::close(c);
          return;
        }
      }
      req.body = buf.substr(0, length);
      buf.erase(0, length);

      Reply reply;
      {
        std::lock_guard lk(mu_);
        auto pq = path_queue_.find(req.path);
        auto pd = path_default_.find(req.path);
        if (pq != path_queue_.end() && !pq->second.empty()) {
          reply = std::move(pq->second.front());
          pq->second.pop_front();
        } else if (pd != path_default_.end()) {
          reply = pd->second;
        } else if (!queue_.empty()) {
          reply = std::move(queue_.front());
          queue_.pop_front();
        } else {
          reply = default_;
        }
        ++count_;
        if (record_bodies_) requests_.push_back(std::move(req));
      }
      cv_.notify_all();

      if (reply.action == Reply::close) {
        ::close(c);
        return;
      }
      if (reply.action == Reply::hang) {
        while (!stopping_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ::close(c);
        return;
      }
      std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
      out += "Content-Type: " + reply.content_type + "\r\n";
      out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
      for (const auto& [k, v] : reply.headers) out += k + ": " + v + "\r\n";
      out += "\r\n";
      out += reply.body;
      send_all(c, out);
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  bool record_bodies_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> conns_;
  std::deque<Reply> queue_;
  Reply default_;
  std::map<std::string, std::deque<Reply>> path_queue_;
  std::map<std::string, Reply> path_default_;
  std::vector<Request> requests_;
  std::size_t count_ = 0;
  std::size_t connections_ = 0;
  std::size_t read_bytes_ = 65536;
  std::chrono::milliseconds read_every_{0};
};

}  // namespace spyglass_test
