#include "spyglass/adapters/curl.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loopback_server.hpp"
#include "spyglass/adapters/httplib.hpp"
#include "support.hpp"

namespace sg = spyglass;
using sg::test::LoopbackServer;
using sg::test::of_kind;
using sg::test::record;

namespace {

// What the server saw of one request.
struct Seen {
  std::string traceparent, tracestate, custom;
};

// An instrumented server that remembers the headers of the last request to /users/{id}.
struct Server {
  httplib::Server server;
  sg::httplib::Middleware mw{server};
  std::unique_ptr<LoopbackServer> loop;
  // Written on a server thread; the socket orders it before the response, but
  // ThreadSanitizer cannot see that, so a mutex says it.
  std::mutex m;
  Seen last;
  Seen seen() {
    std::lock_guard lock(m);
    return last;
  }
  Server() {
    mw.Get(R"(/users/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(m);
      last = {req.get_header_value("traceparent"), req.get_header_value("tracestate"),
              req.get_header_value("X-Custom")};
      res.set_content("user " + req.matches[1].str(), "text/plain");
    });
    mw.Get("/fail", [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
    mw.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body + req.body, "text/plain");
    });
    loop = std::make_unique<LoopbackServer>(server);
  }
};

struct Easy {
  CURL* h = curl_easy_init();
  std::string body;
  explicit Easy(const std::string& url) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(
        h, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
          static_cast<std::string*>(out)->append(p, size * n);
          return size * n;
        });
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  }
  ~Easy() { curl_easy_cleanup(h); }
};

// A loopback port that was bound and is closed again: a connection to it is refused.
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// The first event of `kind` named `name`: a client span may share its name with the
// server's request span for the same route.
const sg::Event* named(const std::vector<sg::Event>& events, std::string_view name,
                       sg::EventKind kind = sg::EventKind::client) {
  for (const auto& e : events)
    if (name == e.name && e.kind == kind) return &e;
  return nullptr;
}

}  // namespace

TEST(CurlClient, ServerRequestIsAChildOfTheClientSpanInOneTrace) {
  Seen seen;
  std::string body, server_url;
  sg::Context job;
  curl_slist* headers = curl_slist_append(nullptr, "X-Custom: kept");
  // A stale traceparent of the caller's is replaced, not sent twice.
  headers =
      curl_slist_append(headers, "TraceParent: 00-11111111111111111111111111111111-2222222222222222-01");
  const auto events = record({}, [&] {
    Server server;
    sg::Scope scope(std::string_view("job"));
    job = scope.context();
    server_url = server.loop->url("/users/42");
    Easy easy(server_url);
    ASSERT_EQ(sg::curl::perform(easy.h, "GET /users/{id}", headers, "vendor=1"), CURLE_OK);
    body = easy.body;
    seen = server.seen();
  });
  curl_slist_free_all(headers);
  EXPECT_EQ(body, "user 42");
  EXPECT_EQ(seen.custom, "kept");
  EXPECT_EQ(seen.tracestate, "vendor=1");
  const auto parsed = sg::parse_traceparent(seen.traceparent);
  ASSERT_TRUE(parsed) << seen.traceparent;

  // The name given with its method keeps the route; the method has its own field.
  const auto* client = named(events, "/users/{id}");
  const auto* request = named(events, R"(/users/(\d+))", sg::EventKind::request);
  ASSERT_NE(client, nullptr);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(client->kind, sg::EventKind::client);
  EXPECT_EQ(request->kind, sg::EventKind::request);
  // One trace: job -> client span -> the server's request span.
  EXPECT_EQ(client->trace_id, job.trace_id);
  EXPECT_EQ(client->parent_span_id, job.span_id);
  EXPECT_EQ(request->trace_id, job.trace_id);
  EXPECT_EQ(request->parent_span_id, client->span_id);
  EXPECT_EQ(parsed->trace_id, job.trace_id);
  EXPECT_EQ(parsed->parent_id, client->span_id);
  // The client's figures are libcurl's, the server's are cpp-httplib's: they agree.
  EXPECT_EQ(client->http_status, 200);
  EXPECT_STREQ(client->detail, "GET");
  // The server called: libcurl's URL without its path (the loopback server's own origin).
  EXPECT_EQ(std::string(client->peer) + "/users/42", server_url);
  EXPECT_EQ(client->bytes_in, body.size());
  EXPECT_EQ(request->bytes_out, body.size());
  EXPECT_EQ(client->status, sg::Status::ok);
  EXPECT_GE(client->duration, request->duration);
}

TEST(CurlClient, TheClientSpanNamesTheServerWithoutUserPathOrQuery) {
  std::string body;
  int port = 0;
  const auto events = record({}, [&] {
    Server server;
    port = server.loop->port();
    // Credentials, a query and a fragment in the URL: none of them may reach the span.
    Easy easy("http://alice:secret@127.0.0.1:" + std::to_string(port) + "/echo?token=abc#part");
    curl_easy_setopt(easy.h, CURLOPT_POSTFIELDS, "hello");
    ASSERT_EQ(sg::curl::perform(easy.h, "/echo"), CURLE_OK);
    body = easy.body;
  });
  EXPECT_EQ(body, "hellohello");
  const auto clients = of_kind(events, sg::EventKind::client);
  ASSERT_EQ(clients.size(), 1u);
  const sg::Event& c = clients[0];
  EXPECT_STREQ(c.name, "/echo");
  EXPECT_STREQ(c.detail, "POST");
  EXPECT_EQ(std::string(c.peer), "http://127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(c.http_status, 200);
  EXPECT_EQ(c.bytes_out, 5u);
  EXPECT_EQ(c.bytes_in, body.size());
  EXPECT_EQ(c.status, sg::Status::ok);
}

TEST(CurlClient, TheHandleKeepsTheCallersHeaders) {
  Seen after;
  curl_slist* headers = curl_slist_append(nullptr, "X-Custom: mine");
  record({}, [&] {
    Server server;
    Easy easy(server.loop->url("/users/1"));
    ASSERT_EQ(sg::curl::perform(easy.h, "GET /users/{id}", headers), CURLE_OK);
    // A plain transfer on the same handle afterwards sends the caller's list, no traceparent.
    curl_easy_setopt(easy.h, CURLOPT_HTTPHEADER, headers);
    ASSERT_EQ(curl_easy_perform(easy.h), CURLE_OK);
    after = server.seen();
  });
  curl_slist_free_all(headers);
  EXPECT_EQ(after.custom, "mine");
  EXPECT_EQ(after.traceparent, "");
  EXPECT_EQ(after.tracestate, "");
}

TEST(CurlClient, FailuresMarkTheClientSpan) {
  int closed_port = 0;
  const auto events = record({}, [&] {
    Server server;
    Easy fail(server.loop->url("/fail"));
    EXPECT_EQ(sg::curl::perform(fail.h, "GET /fail"), CURLE_OK);
    closed_port = unused_port();
    ASSERT_GT(closed_port, 0);
    Easy refused("http://127.0.0.1:" + std::to_string(closed_port) + "/");
    EXPECT_EQ(sg::curl::perform(refused.h, "refused"), CURLE_COULDNT_CONNECT);
    EXPECT_EQ(sg::curl::perform(nullptr, "GET nothing"), CURLE_BAD_FUNCTION_ARGUMENT);
  });
  const auto* fail = named(events, "/fail");  // the client's span, not the server's
  ASSERT_NE(fail, nullptr);
  EXPECT_EQ(fail->http_status, 503);
  EXPECT_EQ(fail->status, sg::Status::error);
  EXPECT_EQ(fail->kind, sg::EventKind::client);
  // A name that is no "<method> <route>" of this transfer stays as it is.
  const auto* refused = named(events, "refused");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->kind, sg::EventKind::client);
  EXPECT_EQ(refused->http_status, 0);
  EXPECT_EQ(refused->status, sg::Status::error);
  // No answer, but the server it was meant for is known.
  EXPECT_EQ(std::string(refused->peer), "http://127.0.0.1:" + std::to_string(closed_port));
  EXPECT_EQ(named(events, "GET nothing"), nullptr);
  EXPECT_EQ(of_kind(events, sg::EventKind::request).size(), 1u);
}

TEST(CurlClient, AnUnsampledTraceIsSentUnsampledAndTheServerFollows) {
  sg::SessionOptions options;
  options.sample_ratio = 0;  // no new trace sampled; the server follows its caller (parent-based)
  Seen seen;
  const auto events = record(options, [&] {
    Server server;
    Easy easy(server.loop->url("/users/5"));
    ASSERT_EQ(sg::curl::perform(easy.h, "GET /users/{id}"), CURLE_OK);
    seen = server.seen();
  });
  const auto parsed = sg::parse_traceparent(seen.traceparent);
  ASSERT_TRUE(parsed) << seen.traceparent;
  EXPECT_FALSE(parsed->sampled());
  EXPECT_TRUE(events.empty()) << events.size() << " event(s), the first " << events[0].name;
}
