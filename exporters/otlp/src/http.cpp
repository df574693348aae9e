// libcurl transport, gzip and response reading for the OTLP exporter.

#include "http.hpp"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <mutex>

#include "spyglass/version.hpp"

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

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(user);
  return (abort != nullptr && abort->load(std::memory_order_relaxed)) ? 1 : 0;
}

// Reads a varint; false when truncated.
bool read_varint(std::string_view& s, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !s.empty(); shift += 7) {
    const auto b = static_cast<unsigned char>(s.front());
    s.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Finds length-delimited field `field` of a message; false when absent or malformed.
bool find_len_field(std::string_view msg, std::uint64_t field, std::string_view& out) {
  while (!msg.empty()) {
    std::uint64_t key = 0;
    if (!read_varint(msg, key)) return false;
    const std::uint64_t type = key & 7;
    std::uint64_t v = 0;
    switch (type) {
      case 0:
        if (!read_varint(msg, v)) return false;
        break;
      case 1:
        if (msg.size() < 8) return false;
        msg.remove_prefix(8);
        break;
      case 5:
        if (msg.size() < 4) return false;
        msg.remove_prefix(4);
        break;
      case 2:
        if (!read_varint(msg, v) || v > msg.size()) return false;
        if ((key >> 3) == field) {
          out = msg.substr(0, v);
          return true;
        }
        msg.remove_prefix(v);
        break;
      default: return false;
    }
  }
  return false;
}

bool find_varint_field(std::string_view msg, std::uint64_t field, std::uint64_t& out) {
  while (!msg.empty()) {
    std::uint64_t key = 0, v = 0;
    if (!read_varint(msg, key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(msg, v)) return false;
        if ((key >> 3) == field) {
          out = v;
          return true;
        }
        break;
      case 1:
        if (msg.size() < 8) return false;
        msg.remove_prefix(8);
        break;
      case 5:
        if (msg.size() < 4) return false;
        msg.remove_prefix(4);
        break;
      case 2:
        if (!read_varint(msg, v) || v > msg.size()) return false;
        msg.remove_prefix(v);
        break;
      default: return false;
    }
  }
  return false;
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

std::int64_t partial_rejected(const HttpResult& r, std::string_view json_key) {
  if (r.body.empty()) return 0;
  if (r.content_type.find("json") != std::string::npos) {
    // {"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}; the count may be a
    // string or a number.
    std::string needle = "\"";
    needle += json_key;
    needle += '"';
    const auto at = r.body.find(needle);
    if (at == std::string::npos) return 0;
    std::size_t i = at + needle.size();
    while (i < r.body.size() && (r.body[i] == ' ' || r.body[i] == ':' || r.body[i] == '"')) ++i;
    long long v = 0;
    const auto res = std::from_chars(r.body.data() + i, r.body.data() + r.body.size(), v);
    return res.ec == std::errc() && v > 0 ? v : 0;
  }
  // Export*ServiceResponse { Export*PartialSuccess partial_success = 1; } whose field 1
  // is rejected_spans / rejected_data_points (int64).
  std::string_view partial;
  if (!find_len_field(r.body, 1, partial)) return 0;
  std::uint64_t v = 0;
  if (!find_varint_field(partial, 1, v)) return 0;
  const auto s = static_cast<std::int64_t>(v);
  return s > 0 ? s : 0;
}

HttpClient::HttpClient() {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void HttpClient::forget() noexcept { curl_ = curl_easy_init(); }

HttpResult HttpClient::post(const std::string& url,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            std::string_view content_type, bool gzipped, std::string_view body,
                            std::chrono::milliseconds timeout, const std::atomic<bool>* abort) {
  HttpResult r;
  auto* h = static_cast<CURL*>(curl_);
  if (h == nullptr) {
    r.curl_code = CURLE_FAILED_INIT;
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_easy_reset(h);
  curl_slist* list = nullptr;
  std::string line = "Content-Type: ";
  line += content_type;
  list = curl_slist_append(list, line.c_str());
  if (gzipped) list = curl_slist_append(list, "Content-Encoding: gzip");
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  for (const auto& [k, v] : headers) {
    if (!header_problem(k, v).empty()) continue;  // the options were checked: a last defence
    line = k;
    line += ": ";
    line += v;
    list = curl_slist_append(list, line.c_str());
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "spyglass/" SPYGLASS_VERSION_STRING);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, abort);
  const CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    r.curl_code = rc;
    r.aborted = rc == CURLE_ABORTED_BY_CALLBACK;
    r.error = curl_easy_strerror(rc);
    r.status = 0;
    return r;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r.status = status;
  return r;
}

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
