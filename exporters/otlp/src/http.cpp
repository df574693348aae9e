// libcurl transport, gzip and response reading for the OTLP exporter.

#include "http.hpp"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <mutex>
#include <thread>

#include "spyglass/version.hpp"
#include "wire.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

bool gzip(std::string_view in, std::string& out) {
  z_stream zs{};
  // 15 window bits + 16: a gzip header and trailer rather than a zlib one. The fastest
  // level: OTLP bodies compress well anyway and the sender's CPU time matters more.
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  out.resize(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const std::size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return false;
  out.resize(produced);
  return true;
}

bool retryable(const HttpResult& r) {
  if (r.aborted) return false;
  if (r.curl_code != CURLE_OK) {
    switch (r.curl_code) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_GOT_NOTHING:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_PARTIAL_FILE: return true;
      default: return false;
    }
  }
  return r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504;
}

namespace {

std::once_flag g_curl_init;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != name[i]) return false;
  }
  return true;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<HttpResult*>(user);
  if (r->body.size() < (1u << 20)) r->body.append(data, size * n);  // enough for any status
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<HttpResult*>(user);
  const std::string_view line(data, size * n);
  if (iequals_prefix(line, "retry-after:")) {
    r->retry_after = parse_retry_after(line.substr(12));
  } else if (iequals_prefix(line, "content-type:")) {
    r->content_type = std::string(trim(line.substr(13)));
  } else if (iequals_prefix(line, "http/")) {
    // A new response (after a 100 Continue or a redirect): forget the previous headers.
    r->retry_after.reset();
    r->content_type.clear();
  }
  return size * n;
}

}  // namespace

// Longest Retry-After kept, in seconds: anything longer is capped by the caller anyway.
constexpr long long kMaxRetryAfterSeconds = 86400;

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v) {
  v = trim(v);
  if (v.empty()) return std::nullopt;
  if (v.find_first_not_of("0123456789") == std::string_view::npos) {
    // delay-seconds: digits only, possibly more than any integer holds.
    long long secs = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), secs);
    if (r.ec == std::errc::result_out_of_range || secs > kMaxRetryAfterSeconds) secs = kMaxRetryAfterSeconds;
    return std::chrono::seconds(secs);
  }
  const std::string date(v);
  const time_t when = curl_getdate(date.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  const time_t now = std::time(nullptr);
  if (when <= now) return std::chrono::milliseconds(0);
  const auto ahead = static_cast<unsigned long long>(when - now);
  return std::chrono::seconds(static_cast<long long>(
      std::min<unsigned long long>(ahead, static_cast<unsigned long long>(kMaxRetryAfterSeconds))));
}

std::string_view header_problem(std::string_view name, std::string_view value) noexcept {
  if (name.empty()) return "the header name is empty";
  for (const char c : name) {
    if (!is_tchar(c)) return "the header name is not an HTTP token";
  }
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "the header value contains a control character (CR, LF, ...)";
  }
  return {};
}

PartialSuccess partial_success(const HttpResult& r, std::string_view json_key) {
  PartialSuccess p;
  if (r.body.empty()) return p;
  if (r.content_type.find("json") != std::string::npos) {
    // {"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}; the count may be a
    // string or a number.
    auto after = [&](std::string_view key) -> std::size_t {
      std::string needle = "\"";
      needle += key;
      needle += '"';
      const auto at = r.body.find(needle);
      if (at == std::string::npos) return std::string::npos;
      std::size_t i = at + needle.size();
      while (i < r.body.size() && (r.body[i] == ' ' || r.body[i] == ':')) ++i;
      return i;
    };
    if (std::size_t i = after(json_key); i != std::string::npos) {
      if (i < r.body.size() && r.body[i] == '"') ++i;
      long long v = 0;
      const auto res = std::from_chars(r.body.data() + i, r.body.data() + r.body.size(), v);
      if (res.ec == std::errc() && v > 0) p.rejected = v;
    }
    if (std::size_t i = after("errorMessage");
        i != std::string::npos && i < r.body.size() && r.body[i] == '"') {
      const auto end = r.body.find('"', i + 1);  // a message with escaped quotes is cut there
      if (end != std::string::npos) p.message = r.body.substr(i + 1, end - i - 1);
    }
    return p;
  }
  // Export*ServiceResponse { Export*PartialSuccess partial_success = 1; } whose fields are
  // rejected_spans / rejected_data_points (1, int64) and error_message (2, string).
  ProtoField partial;
  if (!ProtoReader::find(r.body, 1, kLen, partial)) return p;
  ProtoReader fields(partial.bytes);
  for (ProtoField f; fields.next(f);) {
    if (f.number == 1 && f.type == kVarint) {
      const auto v = static_cast<std::int64_t>(f.value);
      p.rejected = v > 0 ? v : 0;
    } else if (f.number == 2 && f.type == kLen) {
      p.message = std::string(f.bytes);
    }
  }
  return p;
}

namespace {
CURLM* as_multi(void* m) { return static_cast<CURLM*>(m); }

// Milliseconds from now until `t`, at least 0 and at most a day (an int for curl).
long millis_until(HttpClient::Clock::time_point t) {
  const auto now = HttpClient::Clock::now();
  if (t <= now) return 0;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<long>(std::min<long long>(ms, 86'400'000));
}
}  // namespace

HttpClient::HttpClient() {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  easy_ = curl_easy_init();
  multi_.store(curl_multi_init(), std::memory_order_release);
}

HttpClient::~HttpClient() {
  if (easy_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(easy_));
  if (void* m = multi_.load(std::memory_order_acquire)) curl_multi_cleanup(as_multi(m));
}

void HttpClient::reopen_after_fork() noexcept {
  // The old handles' sockets are shared with the parent: closing them here could send a
  // TLS close_notify on the parent's connection, so they are left alone.
  easy_ = curl_easy_init();
  multi_.store(curl_multi_init(), std::memory_order_release);
}

void HttpClient::wake() noexcept {
  if (void* m = multi_.load(std::memory_order_acquire)) curl_multi_wakeup(as_multi(m));
}

bool HttpClient::wait_until(Clock::time_point until, const Cutoff& cutoff) {
  CURLM* m = as_multi(multi_.load(std::memory_order_acquire));
  for (;;) {
    const auto now = Clock::now();
    if (cutoff.get() <= now && cutoff.get() < until) return false;
    if (until <= now) return true;
    const long ms = millis_until(std::min(until, cutoff.get()));
    if (m == nullptr) {  // no multi handle: sleep in short steps, still watching the cutoff
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 10L)));
      continue;
    }
    int numfds = 0;
    curl_multi_poll(m, nullptr, 0, static_cast<int>(ms), &numfds);  // wake() ends it early
  }
}

HttpResult HttpClient::post(const HttpRequest& req, Clock::time_point deadline, const Cutoff& cutoff) {
  HttpResult r;
  auto* h = static_cast<CURL*>(easy_);
  CURLM* m = as_multi(multi_.load(std::memory_order_acquire));
  if (h == nullptr || m == nullptr) {
    r.curl_code = CURLE_FAILED_INIT;
    r.error = "curl_easy_init failed";
    return r;
  }
  auto end_by = [&] { return std::min(deadline, cutoff.get()); };
  if (millis_until(end_by()) == 0) {
    r.curl_code = CURLE_OPERATION_TIMEDOUT;
    r.aborted = true;
    r.error = "no time left for the request";
    return r;
  }
  curl_easy_reset(h);
  curl_slist* list = nullptr;
  std::string line = "Content-Type: ";
  line += req.content_type;
  list = curl_slist_append(list, line.c_str());
  if (req.gzipped) list = curl_slist_append(list, "Content-Encoding: gzip");
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  for (const auto& [k, v] : *req.headers) {
    if (!header_problem(k, v).empty()) continue;  // the options were checked: a last defence
    line = k;
    line += ": ";
    line += v;
    list = curl_slist_append(list, line.c_str());
  }
  const long budget = millis_until(end_by());
  curl_easy_setopt(h, CURLOPT_URL, req.url->c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "spyglass/" SPYGLASS_VERSION_STRING);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, budget);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, budget);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
  curl_multi_add_handle(m, h);
  CURLcode rc = CURLE_OK;
  bool done = false;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
        rc = msg->data.result;
        done = true;
      }
    }
    if (done || running == 0) break;
    const long left = millis_until(end_by());
    if (left == 0) {  // the cutoff moved before curl's own timeout: stop here
      rc = CURLE_OPERATION_TIMEDOUT;
      break;
    }
    int numfds = 0;
    curl_multi_poll(m, nullptr, 0, static_cast<int>(std::min(left, 1000L)), &numfds);
  }
  curl_multi_remove_handle(m, h);
  curl_slist_free_all(list);
  if (!done && !r.aborted && rc == CURLE_OK) rc = CURLE_GOT_NOTHING;
  if (rc != CURLE_OK) {
    r.curl_code = rc;
    // Once the cutoff has passed, nothing may be retried (a request's own timeout may).
    if (cutoff.get() <= Clock::now()) r.aborted = true;
    r.error = cutoff.get() <= Clock::now() ? "request cut short" : curl_easy_strerror(rc);
    r.status = 0;
    r.body.clear();
    return r;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r.status = status;
  return r;
}

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
