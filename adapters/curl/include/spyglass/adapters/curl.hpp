#pragma once
/// libcurl client adapter: records an outgoing HTTP request as a span and tells the
/// server which span it is, so that the server's request span becomes its child.

#include <curl/curl.h>

#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::curl {

/// curl_easy_perform(easy) inside a span named `name` (a child of the calling thread's
/// current span, or a new trace), sending `headers` plus a W3C `traceparent` for that
/// span and, when not empty, `tracestate` (e.g. spyglass::httplib::tracestate() inside a
/// handler). A `traceparent` or `tracestate` already in `headers` is replaced.
///
/// `name` is the route template called, bounded ("/users/{id}", never the URL with its ids
/// or query): it is interned. A name that starts with the method and a space ("GET
/// /users/{id}") is recorded without them. The span is a `client` event with the method
/// (detail), the server as "scheme://host:port" of the URL libcurl used last (peer; no
/// user, path or query), the response status (http_status), body bytes received
/// (bytes_in) and sent (bytes_out). A transfer that fails, or a response status >= 400,
/// marks it as an error (the OpenTelemetry rule for client spans).
///
/// `headers` is the list the caller would give CURLOPT_HTTPHEADER (may be null): this
/// call sets CURLOPT_HTTPHEADER for the transfer and sets it back to `headers` after, so
/// the handle is as the caller left it. Returns curl_easy_perform()'s code, or
/// CURLE_BAD_FUNCTION_ARGUMENT for a null handle and CURLE_OUT_OF_MEMORY when the header
/// list cannot be built (nothing is sent then).
SPYGLASS_API CURLcode perform(CURL* easy, std::string_view name, const curl_slist* headers = nullptr,
                              std::string_view tracestate = {}) noexcept;

}  // namespace SPYGLASS_NAMESPACE::curl
