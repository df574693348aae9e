#include "spyglass/adapters/curl.hpp"

#include <strings.h>

#include <string>

#include "spyglass/intern.hpp"
#include "spyglass/scope.hpp"
#include "spyglass/traceparent.hpp"

namespace SPYGLASS_NAMESPACE::curl {
namespace {

// "scheme://host:port" of `url` (user, path, query and fragment left out; the scheme's
// port when the URL names none), or "" when libcurl cannot parse it.
std::string origin(const char* url) {
  std::string out;
  CURLU* u = curl_url();
  if (u == nullptr || url == nullptr || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    curl_url_cleanup(u);
    return out;
  }
  char *scheme = nullptr, *host = nullptr, *port = nullptr;
  if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    out.append(scheme).append("://").append(host).append(":").append(port);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out;
}

// The outgoing request's span: a client event, filled with the response's figures.
class ClientSpan : public detail::ScopeBase {
 public:
  explicit ClientSpan(std::string_view name) noexcept : ScopeBase(nullptr) {
    if (detail::active()) open(EventKind::client, intern(name));
  }
  void result(const char* method, const char* url, long status, curl_off_t received,
              curl_off_t sent) noexcept {
    if (!active_) return;
    Event& e = event();
    if (method != nullptr) {
      e.detail = intern(method);
      // A name given as "GET /users/{id}" (the method first) keeps the route only: the
      // method has its own field. The rest of an interned name lives as long as it.
      const std::string_view name(e.name), m(method);
      if (name.size() > m.size() && name.compare(0, m.size(), m) == 0 && name[m.size()] == ' ')
        e.name += m.size() + 1;
    }
    try {
      const std::string server = origin(url);
      if (!server.empty()) e.peer = intern(server);
    } catch (...) {  // out of memory: the span goes without its server
    }
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
  char* url = nullptr;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &received);
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &sent);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_METHOD, &method);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
  span.result(method, url, status, received, sent);
  if (rc != CURLE_OK || status >= 400) span.error();
  return rc;
}

}  // namespace SPYGLASS_NAMESPACE::curl
