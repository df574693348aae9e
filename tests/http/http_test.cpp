// spyglass::http against real clients: cpp-httplib's client and raw sockets for the
// status codes, limits and connection handling, Python's urllib and json module for the
// body of /metrics.json (check_metrics.py), xmllint for the flame graph.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <spyglass/http.hpp>
#include <spyglass/spyglass.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using spyglass::http::HttpOptions;
using spyglass::http::Server;

HttpOptions loopback() {
  HttpOptions o;
  o.address = "127.0.0.1:0";
  return o;
}

/// A TCP connection to the server, closed on destruction.
class Socket {
 public:
  explicit Socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect");
    const timeval tv{60, 0};  // a safety net only: the server answers or closes long before
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Socket() { ::close(fd_); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  void send(const std::string& s) const {
    ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  /// Everything until the server closes the connection.
  std::string read_all() const {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  /// One response's head and the body of its Content-Length.
  std::string read_response() const {
    std::string out;
    char buf[4096];
    for (;;) {
      const auto head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto cl = out.find("Content-Length: ");
        const std::size_t len = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 16));
        if (out.size() >= head_end + 4 + len) return out;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
};

/// Sends `request` as it is; everything until the server closes the connection.
std::string raw_request(std::uint16_t port, const std::string& request) {
  const Socket s(port);
  s.send(request);
  return s.read_all();
}

std::string raw_get(std::uint16_t port, const std::string& target) {
  return raw_request(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

int status_of(const std::string& response) {
  return response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = ::pclose(p);
  return rc == 0 ? out : "exit " + std::to_string(rc) + ": " + out;
}

void record_workload() {
  for (int i = 0; i < 10; ++i) {
    SPYGLASS_REQUEST(r, "/users/{id}");
    {
      SPYGLASS_QUERY(q, "SELECT name FROM users WHERE id = 42");
      q.rows(1);
    }
    { SPYGLASS_SCOPE("render"); }
    if (i % 5 == 0) r.error();
    r.status(i % 5 == 0 ? 500 : 200);
  }
}

std::string url(const Server& s, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(s.port()) + path;
}

TEST(HttpServer, MetricsJsonReadByPython) {
  spyglass::Session session;
  const Server server(session.collector(), loopback());
  ASSERT_NE(server.port(), 0);
  record_workload();
  ASSERT_TRUE(session.collector().flush());
  const std::string check = std::string(PYTHON3) + " " + CHECK_METRICS_PY + " ";
  // The literal 42 is redacted, as the core redacts every query name.
  EXPECT_EQ(run(check + url(server, "/metrics.json") +
                " --expect request '/users/{id}' 10 2 --expect db 'SELECT name FROM users WHERE id = ?' 10 0"
                " --expect function render 10 0 --errors 2"),
            "ok\n");
  EXPECT_EQ(run(check + "'" + url(server, "/metrics.json?kind=db&errors=1") + "' --errors 1"), "ok\n");
  const std::string body = server.metrics_json();
  EXPECT_NE(body.find("\"name\":\"SELECT name FROM users WHERE id = ?\""), std::string::npos) << body;
  EXPECT_EQ(body.find("= 42"), std::string::npos);
}

TEST(HttpServer, StatusCodesAndBadParameters) {
  spyglass::Session session;
  const Server server(session.collector(), loopback());
  httplib::Client c("127.0.0.1", server.port());
  for (const char* ok : {"/", "/metrics.json", "/metrics.json?kind=request", "/metrics.json?errors=0",
                         "/metrics.json?errors=50&kind=custom", "/flamegraph.svg"}) {
    const auto r = c.Get(ok);
    ASSERT_TRUE(r) << ok;
    EXPECT_EQ(r->status, 200) << ok;
  }
  for (const char* missing : {"/nope", "/metrics_json", "/metrics.json/", "/index.html", "/favicon.ico"}) {
    const auto r = c.Get(missing);
    ASSERT_TRUE(r) << missing;
    EXPECT_EQ(r->status, 404) << missing;
    EXPECT_NE(r->body.find("\"error\""), std::string::npos) << r->body;
  }
  for (const char* bad : {"/metrics.json?kind=sql", "/metrics.json?errors=-1", "/metrics.json?errors=51",
                          "/metrics.json?errors=", "/metrics.json?errors=1x", "/metrics.json?since=1",
                          "/?x=1", "/flamegraph.svg?width=9"}) {
    const auto r = c.Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_NE(r->body.find("\"error\""), std::string::npos) << r->body;
  }
  // Another method: 405 with Allow on a served path, with or without a body; 404 elsewhere.
  const auto post = c.Post("/metrics.json", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  EXPECT_NE(post->body.find("\"error\""), std::string::npos) << post->body;
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"}) {
    for (const char* path : {"/", "/metrics.json", "/flamegraph.svg", "/nope"}) {
      const bool known = std::string_view(path) != "/nope";
      const std::string r =
          raw_request(server.port(),
                      std::string(method) + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      EXPECT_EQ(status_of(r), known ? 405 : 404) << method << " " << path << ": " << r;
      EXPECT_EQ(r.find("Allow: GET, HEAD\r\n") != std::string::npos, known) << method << " " << path;
    }
  }
  {
    // A body is read before the refusal: the next request on the connection is answered.
    const Socket s(server.port());
    s.send("PUT /metrics.json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    EXPECT_EQ(status_of(s.read_response()), 405);
    s.send("GET /metrics.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(s.read_all()), 200);
  }
  const auto head = c.Head("/metrics.json");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
}

TEST(HttpServer, BearerToken) {
  spyglass::Session session;
  HttpOptions o = loopback();
  o.token = "s3cret-token";
  const Server server(session.collector(), o);
  httplib::Client c("127.0.0.1", server.port());
  for (const char* auth : {"", "Bearer", "Bearer ", "Bearer s3cret", "Bearer s3cret-token2",
                           "Bearer S3CRET-TOKEN", "Basic s3cret-token", "bearer s3cret-token"}) {
    httplib::Headers h;
    if (*auth != '\0') h.emplace("Authorization", auth);
    for (const char* path : {"/metrics.json", "/flamegraph.svg"}) {
      const auto r = c.Get(path, h);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 401) << path << " with '" << auth << "'";
      EXPECT_EQ(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0U);
      EXPECT_EQ(r->body.find("\"series\""), std::string::npos);
    }
  }
  const auto ok = c.Get("/metrics.json", {{"Authorization", "Bearer s3cret-token"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(run(std::string(PYTHON3) + " " + CHECK_METRICS_PY + " " + url(server, "/metrics.json") +
                " --token s3cret-token"),
            "ok\n");
  // The page holds no data; it is served so that a browser can open it and send the token.
  const auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
}

TEST(HttpServer, BadOptionsAndBusyPort) {
  spyglass::Session session;
  for (const char* a :
       {"", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", "host:1234567"}) {
    HttpOptions o;
    o.address = a;
    EXPECT_THROW(Server(session.collector(), o), std::invalid_argument) << a;
  }
  HttpOptions o = loopback();
  o.token = "two words";
  EXPECT_THROW(Server(session.collector(), o), std::invalid_argument);
  o = loopback();
  o.max_connections = 1;
  o.threads = 2;
  EXPECT_THROW(Server(session.collector(), o), std::invalid_argument);
  const Server first(session.collector(), loopback());
  o = loopback();
  o.address = "127.0.0.1:" + std::to_string(first.port());
  try {
    const Server second(session.collector(), o);
    ADD_FAILURE() << "a second server bound the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(o.address), std::string::npos) << e.what();
  }
}

TEST(HttpServer, OversizedRequestsAndPathTraversal) {
  spyglass::Session session;
  HttpOptions o = loopback();
  // The server closes a refused connection when the client stops sending: short timeouts
  // keep the test quick.
  o.read_timeout = o.keep_alive_timeout = std::chrono::seconds(1);
  const Server server(session.collector(), o);
  EXPECT_EQ(status_of(raw_get(server.port(), "/metrics.json?kind=" + std::string(10000, 'a'))), 414);
  {
    const Socket s(server.port());
    s.send("GET /metrics.json HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n");
    const int status = status_of(s.read_all());
    EXPECT_TRUE(status == 400 || status == 431) << status;  // cpp-httplib 0.11 answers 400
  }
  {
    const Socket s(server.port());
    s.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(s.read_all()), 413);
  }
  for (const char* t :
       {"/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/./metrics.json/../../etc/passwd", "//etc/passwd",
        "/..\\..\\etc\\passwd", "/%00/etc/passwd"}) {
    const std::string r = raw_get(server.port(), t);
    const int status = status_of(r);
    EXPECT_TRUE(status == 404 || status == 400) << t << ": " << status;
    EXPECT_EQ(r.find("root:"), std::string::npos) << t;
  }
  // Still serving.
  EXPECT_EQ(status_of(raw_get(server.port(), "/metrics.json")), 200);
}

TEST(HttpServer, SlowClientIsDisconnected) {
  spyglass::Session session;
  HttpOptions o = loopback();
  o.read_timeout = std::chrono::seconds(1);
  o.keep_alive_timeout = std::chrono::seconds(1);
  const Server server(session.collector(), o);
  const Socket slow(server.port());
  slow.send("GET /metrics.json HTTP/1.1\r\nHost: x\r\n");  // and never the end of the head
  // The server gives up on it: the connection ends without a 200.
  const std::string r = slow.read_all();
  EXPECT_EQ(r.find("200 OK"), std::string::npos) << r;
  EXPECT_EQ(status_of(raw_get(server.port(), "/metrics.json")), 200);
}

// Idle connections, more than the threads started, do not delay a request: it is
// answered while they are all still open and usable (with keep-alive and read timeouts
// of a minute, a request that had to wait for one of them to close would time out).
TEST(HttpServer, IdleConnectionsDoNotStarveIt) {
  spyglass::Session session;
  HttpOptions o = loopback();
  o.threads = 2;
  o.max_connections = 16;
  o.read_timeout = o.keep_alive_timeout = std::chrono::seconds(60);
  const Server server(session.collector(), o);
  std::vector<std::unique_ptr<Socket>> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(std::make_unique<Socket>(server.port()));
  // One keep-alive connection that made a request and now idles too.
  idle[0]->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(idle[0]->read_response()), 200);

  httplib::Client c("127.0.0.1", server.port());
  c.set_connection_timeout(20);
  c.set_read_timeout(20);
  const auto r = c.Get("/metrics.json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  for (auto& s : idle) {
    s->send("GET /metrics.json HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_of(s->read_response()), 200);
  }
}

// Beyond max_connections a request waits for an idle connection to time out, no longer.
TEST(HttpServer, BeyondTheCapARequestWaitsForTheKeepAliveTimeout) {
  spyglass::Session session;
  HttpOptions o = loopback();
  o.threads = 2;
  o.max_connections = 2;
  o.read_timeout = o.keep_alive_timeout = std::chrono::seconds(1);
  const Server server(session.collector(), o);
  const Socket a(server.port()), b(server.port());
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60);
  const auto r = c.Get("/metrics.json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, FlameGraphAndPage) {
  spyglass::Session session;
  // The first spans of a thread pay one-time setup (registration, interning, the query's
  // redaction) in the request's own time, which would dwarf the children: a round before
  // the server exists takes it.
  record_workload();
  ASSERT_TRUE(session.collector().flush());
  const Server server(session.collector(), loopback());
  record_workload();
  ASSERT_TRUE(session.collector().flush());
  httplib::Client c("127.0.0.1", server.port());
  const auto svg = c.Get("/flamegraph.svg");
  ASSERT_TRUE(svg);
  EXPECT_EQ(svg->get_header_value("Content-Type"), "image/svg+xml");
  EXPECT_NE(svg->body.find("/users/{id}"), std::string::npos);
  EXPECT_NE(svg->body.find("SELECT name FROM users WHERE id = ?"), std::string::npos);
  const std::string path = ::testing::TempDir() + "/spyglass_http_flame.svg";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fwrite(svg->body.data(), 1, svg->body.size(), f);
  std::fclose(f);
  EXPECT_EQ(run(std::string(XMLLINT) + " --noout " + path), "");

  const auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<link rel=\"icon\" href=\"data:,\">"), std::string::npos);
  for (const char* external : {"src=\"http", "href=\"http", "url(http", "//cdn"})
    EXPECT_EQ(page->body.find(external), std::string::npos) << external;
}

}  // namespace
