#pragma once
/// spyglass::http: serves, from inside an instrumented application, the collector's
/// statistics as JSON (/metrics.json), a flame graph of recent spans (/flamegraph.svg)
/// and a self-contained page that draws them (/). Link spyglass::http; the HTTP server
/// (cpp-httplib) stays behind this header.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "spyglass/collector.hpp"
#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::http {

/// Settings of a Server. The defaults serve loopback only, with no token.
struct HttpOptions {
  /// "host:port" to listen on; port 0 picks a free port (see Server::port()).
  std::string address = "127.0.0.1:9465";
  /// Non-empty: every path but / (the data, and unknown paths alike) answers 401 unless
  /// the request carries `Authorization: Bearer <token>`. The page (/) holds no data and is always served;
  /// it sends the token given in its URL fragment (`/#token=...`), which browsers never
  /// send to the server.
  std::string token;
  /// Worker threads started with the server.
  std::size_t threads = 4;
  /// Connections served at once (each holds a thread while it is open, keep-alive
  /// included); more threads are started on demand up to this, so idle clients below it
  /// never delay a request. Beyond it, a connection waits until one closes, which
  /// keep_alive_timeout bounds. At least `threads`.
  std::size_t max_connections = 64;
  /// How long a client may take to send a request, and how long a response write may
  /// stall; slower clients are disconnected. Whole seconds (the server's resolution), >= 1.
  std::chrono::seconds read_timeout{5};
  /// As read_timeout, for writing responses.
  std::chrono::seconds write_timeout{5};
  /// An idle keep-alive connection is closed after this. Whole seconds, >= 1.
  std::chrono::seconds keep_alive_timeout{2};
  /// Largest request body accepted (413 beyond). The endpoints take no body.
  std::size_t max_body_bytes = 4096;
  /// Recent error events kept for /metrics.json ("recent_errors").
  std::size_t recent_errors = 50;
  /// Recent spans kept for the flame graph (0: no flame graph).
  std::size_t recent_spans = 4096;
};

namespace detail {
struct ServerImpl;
}

/// The in-app HTTP server. Starts listening in the constructor, stops in the destructor
/// (RAII). It adds one exporter ("http") to the collector, which keeps the recent errors
/// and spans; the statistics come from Collector::stats(). A collector cannot remove an
/// exporter, so that one stays (idle but fed) after the Server is gone: create one Server
/// per collector, not one per use.
///
/// Endpoints (GET or HEAD; another method gets 405 Method Not Allowed with `Allow: GET, HEAD`;
/// unknown paths 404; unknown or malformed query parameters 400):
/// - `/metrics.json[?kind=K][&errors=N]`: the statistics and the collector's counters; K
///   (request, function, db, custom) keeps that kind's series, N (0..recent_errors) caps
///   the recent errors listed. The fields are described in README.md ("In-app page").
/// - `/flamegraph.svg`: the recent spans' nesting as a zoomable SVG flame graph.
/// - `/`: the page.
/// No file is ever served, so no path can reach the file system.
///
/// Thread-safety: the object is constructed and destroyed on one thread; port() and
/// metrics_json() may be called from any thread.
class SPYGLASS_API Server {
 public:
  /// Binds and starts serving. Throws std::invalid_argument for bad options (checked
  /// before binding) and std::runtime_error naming the address when it cannot listen.
  /// `collector` must outlive the Server.
  explicit Server(Collector& collector, HttpOptions options = {});
  /// Stops accepting and joins the threads once their connections end: within about
  /// keep_alive_timeout for an idle connection, read_timeout or write_timeout for one in
  /// the middle of a request.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The TCP port listened on (the one picked when 0 was asked).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The body /metrics.json serves with no query parameter.
  [[nodiscard]] std::string metrics_json() const;

 private:
  std::unique_ptr<detail::ServerImpl> impl_;
};

}  // namespace SPYGLASS_NAMESPACE::http
