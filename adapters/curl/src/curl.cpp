#include "spyglass/adapters/curl.hpp"

#include <strings.h>

#include <string>

#include "spyglass/intern.hpp"
#include "spyglass/scope.hpp"
#include "spyglass/traceparent.hpp"

namespace SPYGLASS_NAMESPACE::curl {
namespace {

// The outgoing request's span. A ScopeBase, so that the response's figures land in the
// event; recorded as `custom` since the event kinds have none for a client call.
class ClientSpan : public detail::ScopeBase {
 public:
  explicit ClientSpan(std::string_view name) noexcept : ScopeBase(nullptr) {
    if (detail::active()) open(EventKind::custom, intern(name));
  }
  void result(const char* method, long status, curl_off_t received, curl_off_t sent) noexcept {
    if (!active_) return;
    Event& e = event();
    if (method != nullptr) e.detail = intern(method);
    e.http_status = static_cast<std::uint16_t>(status > 0 && status < 65536 ? status : 0);
    e.bytes_in = received > 0 ? static_cast<std::uint64_t>(received) : 0;
    e.bytes_out = sent > 0 ? static_cast<std::uint64_t>(sent) : 0;
  }
};

bool is_header(const char* line, std::string_view name) noexcept {
  return strncasecmp(line, name.data(), name.size()) == 0 && line[name.size()] == ':';
}

// `list` with `line` appended; frees `list` and returns null when out of memory.
curl_slist* append(curl_slist* list, const char* line) noexcept {
  curl_slist* grown = curl_slist_append(list, line);
  if (grown == nullptr) curl_slist_free_all(list);
  return grown;
}

}  // namespace

CURLcode perform(CURL* easy, std::string_view name, const curl_slist* headers,
                 std::string_view tracestate) noexcept {
  if (easy == nullptr) return CURLE_BAD_FUNCTION_ARGUMENT;
  ClientSpan span(name);
  curl_slist* list = nullptr;
  bool ok = true;
  for (const curl_slist* h = headers; h != nullptr && ok; h = h->next) {
    if (h->data == nullptr || is_header(h->data, "traceparent") || is_header(h->data, "tracestate")) continue;
    list = append(list, h->data);
    ok = list != nullptr;
  }
  try {
    const Context ctx = span.context();
    if (ok && ctx.valid()) {
      std::string line = "traceparent: " + format_traceparent(ctx.trace_id, ctx.span_id, ctx.sampled);
      list = append(list, line.c_str());
      ok = list != nullptr;
    }
    if (ok && !tracestate.empty()) {
      std::string line = "tracestate: ";
      line += tracestate;
      list = append(list, line.c_str());
      ok = list != nullptr;
    }
  } catch (...) {
    ok = false;
  }
  if (!ok) {
    curl_slist_free_all(list);
    span.error();
    return CURLE_OUT_OF_MEMORY;
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  const CURLcode rc = curl_easy_perform(easy);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_slist_free_all(list);

  long status = 0;
  curl_off_t received = 0, sent = 0;
  char* method = nullptr;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &received);
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &sent);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_METHOD, &method);
  span.result(method, status, received, sent);
  if (rc != CURLE_OK || status >= 400) span.error();
  return rc;
}

}  // namespace SPYGLASS_NAMESPACE::curl
