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
  bool aborted = false;  ///< Cut short (or never started) by the cutoff, or no time was left.
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

/// The moment by which every request and wait of the exporter must be over: set once,
/// from any thread, by begin_shutdown(); until then it is the far future.
class Cutoff {
 public:
  using Clock = std::chrono::steady_clock;
  void set(Clock::time_point at) noexcept {
    at_.store(at.time_since_epoch().count(), std::memory_order_release);
  }
  [[nodiscard]] Clock::time_point get() const noexcept {
    return Clock::time_point(Clock::duration(at_.load(std::memory_order_acquire)));
  }

 private:
  std::atomic<Clock::rep> at_{Clock::time_point::max().time_since_epoch().count()};
};

/// One POST to make.
struct HttpRequest {
  const std::string* url = nullptr;
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  ///< Checked ones.
  std::string_view content_type;
  bool gzipped = false;
  std::string_view body;
};

/// A libcurl easy handle driven through a multi handle, so that a request or a wait can
/// be cut short from another thread (wake()) and connections are kept alive between
/// requests. Not thread-safe except for wake(): one thread makes the requests.
class HttpClient {
 public:
  using Clock = std::chrono::steady_clock;
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// POSTs the request, leaving out headers with a header_problem(). It ends by
  /// `deadline` or by `cutoff`, whichever comes first, even when the receiver does not
  /// answer or reads slowly; one that has passed is reported with aborted set, without a
  /// connection attempt.
  HttpResult post(const HttpRequest& request, Clock::time_point deadline, const Cutoff& cutoff);

  /// Sleeps until `until` or `cutoff`, whichever comes first. Returns false when the
  /// cutoff ended it early.
  bool wait_until(Clock::time_point until, const Cutoff& cutoff);

  /// Makes a running post() or wait_until() look at the cutoff again now. Thread-safe,
  /// does not block.
  void wake() noexcept;

  /// Drops the handles (and their connections, which belong to the parent) without using
  /// them, and opens new ones; for a child after fork().
  void reopen_after_fork() noexcept;

 private:
  void* easy_ = nullptr;
  std::atomic<void*> multi_{nullptr};
};

/// What an Export*ServiceResponse's partial_success said.
struct PartialSuccess {
  std::int64_t rejected = 0;  ///< Items the receiver rejected; 0 when none or unreadable.
  std::string message;        ///< Its error_message, possibly empty.
};

/// The partial_success of a response (protobuf or JSON body). `json_key` is
/// "rejectedSpans" or "rejectedDataPoints".
PartialSuccess partial_success(const HttpResult& r, std::string_view json_key);

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
