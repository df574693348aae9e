#include "spyglass/adapters/httplib.hpp"

#include <algorithm>
#include <utility>

#include "spyglass/scope.hpp"

namespace SPYGLASS_NAMESPACE::httplib {
namespace {

thread_local std::string_view tl_tracestate;

// Makes a request's tracestate visible to tracestate() while its handler runs.
class TraceStateGuard {
 public:
  explicit TraceStateGuard(std::string_view value) noexcept : saved_(tl_tracestate) { tl_tracestate = value; }
  ~TraceStateGuard() { tl_tracestate = saved_; }
  TraceStateGuard(const TraceStateGuard&) = delete;
  TraceStateGuard& operator=(const TraceStateGuard&) = delete;

 private:
  std::string_view saved_;
};

// The header's value, or empty; get_header_value() would copy it into a new string.
std::string_view header(const ::httplib::Request& req, const char* name) noexcept {
  const auto it = req.headers.find(name);
  return it == req.headers.end() ? std::string_view{} : std::string_view(it->second);
}

}  // namespace

Middleware::Middleware(::httplib::Server& server, ServerOptions options)
    : server_(server), options_(std::move(options)) {}

Middleware::Handler Middleware::wrap(const std::string& pattern, Handler handler) const {
  if (std::find(options_.exclude.begin(), options_.exclude.end(), pattern) != options_.exclude.end())
    return handler;
  return [route = pattern, handler = std::move(handler)](const ::httplib::Request& req,
                                                         ::httplib::Response& res) {
    RequestScope scope(route, header(req, "traceparent"), req.method);
    const TraceStateGuard state(header(req, "tracestate"));
    scope.bytes_in(req.body.size());
    try {
      handler(req, res);
    } catch (...) {
      scope.status(500);  // what cpp-httplib answers for an exception it catches
      throw;
    }
    // cpp-httplib answers 200 for a handler that set no status.
    scope.status(static_cast<std::uint16_t>(res.status == -1 ? 200 : res.status));
    scope.bytes_out(res.body.empty() ? res.content_length_ : res.body.size());
  };
}

Middleware& Middleware::Get(const std::string& pattern, Handler handler) {
  server_.Get(pattern, wrap(pattern, std::move(handler)));
  return *this;
}
Middleware& Middleware::Post(const std::string& pattern, Handler handler) {
  server_.Post(pattern, wrap(pattern, std::move(handler)));
  return *this;
}
Middleware& Middleware::Put(const std::string& pattern, Handler handler) {
  server_.Put(pattern, wrap(pattern, std::move(handler)));
  return *this;
}
Middleware& Middleware::Patch(const std::string& pattern, Handler handler) {
  server_.Patch(pattern, wrap(pattern, std::move(handler)));
  return *this;
}
Middleware& Middleware::Delete(const std::string& pattern, Handler handler) {
  server_.Delete(pattern, wrap(pattern, std::move(handler)));
  return *this;
}
Middleware& Middleware::Options(const std::string& pattern, Handler handler) {
  server_.Options(pattern, wrap(pattern, std::move(handler)));
  return *this;
}

std::string_view tracestate() noexcept { return tl_tracestate; }

}  // namespace SPYGLASS_NAMESPACE::httplib
