#pragma once
/// cpp-httplib server middleware: each request to a route registered through it is
/// recorded as one request event, named by the route's *pattern* (as registered, e.g.
/// "/users/(\\d+)"), never by the raw path, so the number of names stays bounded.
///
/// The event holds the method, the status (200 when the handler set none), bytes in (the
/// request body) and bytes out (the response body, or the length a content provider
/// declared); a handler that throws is recorded as an error with status 500 and the
/// exception passes on to cpp-httplib. A request carrying a valid W3C `traceparent`
/// joins the caller's trace (its span is a child of the caller's span); one without, or
/// with a malformed one, starts a new trace. Its `tracestate` is available to the handler
/// through tracestate(), to be passed downstream. Sampling and the Session's excluded
/// routes apply as for any request scope (matched against the pattern). Requests that
/// match no registered route are not recorded.

#include <httplib.h>

#include <string>
#include <string_view>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::httplib {

/// Settings of a Middleware.
struct ServerOptions {
  /// Route patterns registered without instrumentation (health checks, metrics), matched
  /// exactly against the pattern given to Get()/Post()/...
  std::vector<std::string> exclude;
};

/// Registers handlers on a server, each wrapped to record its requests. Keeps a reference
/// to the server: the server must outlive it. Register routes before the server listens,
/// as cpp-httplib requires.
class SPYGLASS_API Middleware {
 public:
  using Handler = ::httplib::Server::Handler;

  explicit Middleware(::httplib::Server& server, ServerOptions options = {});

  Middleware& Get(const std::string& pattern, Handler handler);
  Middleware& Post(const std::string& pattern, Handler handler);
  Middleware& Put(const std::string& pattern, Handler handler);
  Middleware& Patch(const std::string& pattern, Handler handler);
  Middleware& Delete(const std::string& pattern, Handler handler);
  Middleware& Options(const std::string& pattern, Handler handler);

  /// `handler` wrapped to record its requests under `pattern` (unless excluded), for
  /// registration by other means.
  [[nodiscard]] Handler wrap(const std::string& pattern, Handler handler) const;

 private:
  ::httplib::Server& server_;
  ServerOptions options_;
};

/// The `tracestate` header of the request the calling thread is handling through a
/// Middleware route, or "" (none, or outside a handler). Valid until the handler returns.
[[nodiscard]] SPYGLASS_API std::string_view tracestate() noexcept;

}  // namespace SPYGLASS_NAMESPACE::httplib
