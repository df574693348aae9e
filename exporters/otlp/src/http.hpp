#pragma once
// One OTLP/HTTP request at a time over libcurl, plus gzip. Private to the exporter.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

/// gzip-compresses `in` into `out` (replacing it). Returns false if zlib failed.
bool gzip(std::string_view in, std::string& out);

/// What one POST came back with.
struct HttpResult {
  int curl_code = 0;  ///< CURLcode; 0 when an HTTP response arrived.
  long status = 0;    ///< HTTP status, 0 without a response.
  std::string body;   ///< Response body.
  std::string content_type;
  std::optional<std::chrono::milliseconds> retry_after;  ///< From a Retry-After header.
  std::string error;                                     ///< curl's message when curl_code != 0.
  bool aborted = false;                                  ///< Stopped by the abort flag.
};

/// Why the header `name: value` must not be sent, or "" when it may be. The name must be
/// an HTTP token (RFC 9110 tchar); the value must hold no control character (0x00-0x1f,
/// 0x7f): a CR or LF would end the header early and let the rest inject headers of its
/// own, and the others (NUL, HTAB, ...) have no business in a credential either.
std::string_view header_problem(std::string_view name, std::string_view value) noexcept;

/// Parses a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 10.2.3). nullopt
/// when malformed; a huge delay saturates at a day rather than overflowing.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

/// Whether a result may succeed when tried again: 429, 502, 503, 504, and transport
/// failures (refused, reset, closed without a response, timed out).
bool retryable(const HttpResult& r);

/// A reusable libcurl easy handle (keeps the connection alive between requests).
/// Not thread-safe: one client per thread.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// POSTs `body`, leaving out headers with a header_problem(). `abort` is polled during
  /// the transfer; when it becomes true the request stops early with aborted set.
  HttpResult post(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
                  std::string_view content_type, bool gzipped, std::string_view body,
                  std::chrono::milliseconds timeout, const std::atomic<bool>* abort);

  /// Drops the handle (and its connections) without using it; for a child after fork().
  void forget() noexcept;

 private:
  void* curl_ = nullptr;
};

/// Rejected item count in an Export*ServiceResponse partial_success (protobuf or JSON
/// body), 0 when there is none or the body cannot be read. `json_key` is "rejectedSpans"
/// or "rejectedDataPoints".
std::int64_t partial_rejected(const HttpResult& r, std::string_view json_key);

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
