#pragma once
// libcurl, loaded on first use rather than linked: with the TLS, Kerberos and LDAP
// libraries it needs it is most of the dynamic loader's work at start-up (about 10 ms of
// CPU), which every `spyglass run` would pay for features it may not use (Prometheus
// queries, alert delivery). One loader for the whole command.

#include <curl/curl.h>

#include <memory>
#include <string>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// The libcurl functions the command calls; all null and `error` set when it cannot be loaded.
struct Curl {
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_easy_escape) easy_escape = nullptr;
  decltype(&curl_free) free = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
  std::string error;  ///< why it could not be loaded; empty when loaded

  [[nodiscard]] bool loaded() const { return error.empty(); }
};

/// libcurl, loaded and globally initialised on the first call (thread-safe; later calls
/// return the same functions).
const Curl& curl_lib();

/// Cleans an easy handle up with the loaded library.
struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_lib().easy_cleanup(c); }
};
/// An easy handle that cleans itself up.
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

}  // namespace SPYGLASS_NAMESPACE::cli
