#include "spyglass/adapters/httplib.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "loopback_server.hpp"
#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace sg = spyglass;
using sg::test::LoopbackServer;

namespace {

using sg::test::of_kind;
using sg::test::record;

constexpr std::size_t kExportBytes = 25000;

// The routes every test serves.
void add_routes(sg::httplib::Middleware& mw, std::string* seen_tracestate = nullptr) {
  mw.Get(R"(/users/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
    SPYGLASS_SCOPE("load_user");
    res.set_content("user " + req.matches[1].str(), "text/plain");
  });
  mw.Post("/orders", [seen_tracestate](const httplib::Request& req, httplib::Response& res) {
    if (seen_tracestate != nullptr) *seen_tracestate = std::string(sg::httplib::tracestate());
    res.status = 201;
    res.set_content("{\"bytes\":" + std::to_string(req.body.size()) + "}", "application/json");
  });
  mw.Get("/missing", [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
  // A body streamed by a content provider after the handler returned, of a declared length.
  mw.Get("/export", [](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(
        kExportBytes, "text/plain", [](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          const std::string chunk(std::min<std::size_t>(length, 1000), static_cast<char>('a' + offset % 26));
          return sink.write(chunk.data(), chunk.size());
        });
  });
  mw.Get("/boom",
         [](const httplib::Request&, httplib::Response&) { throw std::runtime_error("handler failed"); });
  mw.Get("/health",
         [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
  mw.Get("/internal/status",
         [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
}

// Serves the routes on loopback for the duration of `fn`, which gets a client of it.
void serve(sg::httplib::ServerOptions options, const std::function<void(httplib::Client&)>& fn,
           std::string* seen_tracestate = nullptr) {
  httplib::Server server;
  sg::httplib::Middleware mw(server, std::move(options));
  add_routes(mw, seen_tracestate);
  LoopbackServer loop(server);
  httplib::Client client("127.0.0.1", loop.port());
  fn(client);
}

constexpr const char* kTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

}  // namespace

TEST(HttplibServer, RecordsTheRoutePatternWithMethodStatusAndBytes) {
  std::string body;
  const auto events = record({}, [&] {
    serve({}, [&](httplib::Client& client) {
      auto res = client.Get("/users/42");
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 200);
      body = res->body;
    });
  });
  EXPECT_EQ(body, "user 42");
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_STREQ(r.name, R"(/users/(\d+))");
  EXPECT_STREQ(r.detail, "GET");
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.status, sg::Status::ok);
  EXPECT_EQ(r.bytes_in, 0u);
  EXPECT_EQ(r.bytes_out, body.size());
  EXPECT_EQ(r.parent_span_id, 0u);  // no traceparent: a new trace
  // The handler's own scope is a child of the request.
  const auto fns = of_kind(events, sg::EventKind::function);
  ASSERT_EQ(fns.size(), 1u);
  EXPECT_EQ(fns[0].trace_id, r.trace_id);
  EXPECT_EQ(fns[0].parent_span_id, r.span_id);
}

TEST(HttplibServer, BytesOutOfAContentProviderAreItsDeclaredLength) {
  std::size_t received = 0;
  const auto events = record({}, [&] {
    serve({}, [&](httplib::Client& client) {
      auto res = client.Get("/export");
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 200);
      received = res->body.size();
    });
  });
  EXPECT_EQ(received, kExportBytes);  // what the client read
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].bytes_out, received);
  EXPECT_EQ(requests[0].http_status, 200);
}

TEST(HttplibServer, AdoptsTheCallersTraceparentAndTracestate) {
  std::string seen_tracestate;
  const std::string payload(1000, 'x');
  const auto events = record({}, [&] {
    serve(
        {},
        [&](httplib::Client& client) {
          const httplib::Headers headers{{"traceparent", kTraceParent}, {"tracestate", "vendor=abc,other=1"}};
          auto res = client.Post("/orders", headers, payload, "text/plain");
          ASSERT_TRUE(res);
          EXPECT_EQ(res->status, 201);
        },
        &seen_tracestate);
  });
  EXPECT_EQ(seen_tracestate, "vendor=abc,other=1");
  const auto parent = sg::parse_traceparent(kTraceParent);
  ASSERT_TRUE(parent);
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].trace_id, parent->trace_id);
  EXPECT_EQ(requests[0].parent_span_id, parent->parent_id);
  EXPECT_STREQ(requests[0].name, "/orders");
  EXPECT_STREQ(requests[0].detail, "POST");
  EXPECT_EQ(requests[0].http_status, 201);
  EXPECT_EQ(requests[0].bytes_in, payload.size());
}

TEST(HttplibServer, MalformedTraceparentStartsANewTrace) {
  const auto events = record({}, [&] {
    serve({}, [&](httplib::Client& client) {
      // Uppercase hex is invalid in traceparent.
      auto res = client.Get("/users/7",
                            {{"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"}});
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 200);
    });
  });
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].parent_span_id, 0u);
  EXPECT_NE(requests[0].trace_id, sg::parse_traceparent(kTraceParent)->trace_id);
  EXPECT_TRUE(requests[0].trace_id.valid());
}

TEST(HttplibServer, ExceptionsAndErrorStatuses) {
  const auto events = record({}, [&] {
    serve({}, [&](httplib::Client& client) {
      auto boom = client.Get("/boom");
      ASSERT_TRUE(boom);
      EXPECT_EQ(boom->status, 500);  // cpp-httplib's own answer to the exception
      auto missing = client.Get("/missing");
      ASSERT_TRUE(missing);
      EXPECT_EQ(missing->status, 404);
    });
  });
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) {
    if (std::string_view(r.name) == "/boom") {
      EXPECT_EQ(r.http_status, 500);
      EXPECT_EQ(r.status, sg::Status::error);
    } else {
      EXPECT_STREQ(r.name, "/missing");
      EXPECT_EQ(r.http_status, 404);
      EXPECT_EQ(r.status, sg::Status::ok);
    }
  }
}

TEST(HttplibServer, ExcludedRoutesAreNotRecorded) {
  sg::SessionOptions options;
  options.exclude_route_prefixes = {"/internal/"};
  const auto events = record(options, [&] {
    serve({.exclude = {"/health"}}, [&](httplib::Client& client) {
      for (const char* path : {"/health", "/internal/status", "/users/1"}) {
        auto res = client.Get(path);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << path;
      }
    });
  });
  const auto requests = of_kind(events, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_STREQ(requests[0].name, R"(/users/(\d+))");
}

TEST(HttplibServer, SamplingFollowsTheCallersFlagOrTheRatio) {
  const std::string sampled = kTraceParent;  // flags 01
  const std::string unsampled = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-00";
  const auto get = [](httplib::Client& client, const char* path, const std::string& traceparent) {
    httplib::Headers headers;
    if (!traceparent.empty()) headers.emplace("traceparent", traceparent);
    auto res = client.Get(path, headers);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << path;
  };
  // No new trace is sampled; a caller's decision is followed (parent-based, the default).
  sg::SessionOptions parent_based;
  parent_based.sample_ratio = 0;
  const auto followed = record(parent_based, [&] {
    serve({}, [&](httplib::Client& client) {
      get(client, "/users/1", "");
      get(client, "/users/2", sampled);
      get(client, "/users/3", unsampled);
    });
  });
  const auto requests = of_kind(followed, sg::EventKind::request);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].trace_id, sg::parse_traceparent(sampled)->trace_id);
  EXPECT_TRUE(requests[0].sampled());
  // The handler's own scope inherits the decision.
  const auto fns = of_kind(followed, sg::EventKind::function);
  ASSERT_EQ(fns.size(), 1u);
  EXPECT_EQ(fns[0].parent_span_id, requests[0].span_id);

  // Not parent-based: the ratio decides from the trace id, whatever the caller's flag.
  sg::SessionOptions by_ratio;
  by_ratio.parent_based = false;
  const auto decided = record(
      by_ratio, [&] { serve({}, [&](httplib::Client& client) { get(client, "/users/3", unsampled); }); });
  const auto all = of_kind(decided, sg::EventKind::request);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].trace_id, sg::parse_traceparent(unsampled)->trace_id);
  EXPECT_TRUE(all[0].sampled());
}
