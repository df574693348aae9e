// libcurl loaded with dlopen on first use (see curl_lib.hpp).

#include "curl_lib.hpp"

#include <dlfcn.h>

namespace SPYGLASS_NAMESPACE::cli {

namespace {

template <typename F>
void bind(void* lib, const char* name, F& f, std::string& error) {
  f = reinterpret_cast<F>(::dlsym(lib, name));
  if (f == nullptr && error.empty()) error = std::string("no ") + name + " in libcurl.so.4";
}

}  // namespace

const Curl& curl_lib() {
  static const Curl lib = [] {
    Curl c;
    void* h = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      c.error = e != nullptr ? e : "cannot load libcurl.so.4";
      return c;
    }
    decltype(&curl_global_init) global_init = nullptr;
    bind(h, "curl_global_init", global_init, c.error);
    bind(h, "curl_easy_init", c.easy_init, c.error);
    bind(h, "curl_easy_cleanup", c.easy_cleanup, c.error);
    bind(h, "curl_easy_escape", c.easy_escape, c.error);
    bind(h, "curl_free", c.free, c.error);
    bind(h, "curl_easy_setopt", c.easy_setopt, c.error);
    bind(h, "curl_easy_perform", c.easy_perform, c.error);
    bind(h, "curl_easy_getinfo", c.easy_getinfo, c.error);
    bind(h, "curl_easy_strerror", c.easy_strerror, c.error);
    bind(h, "curl_slist_append", c.slist_append, c.error);
    bind(h, "curl_slist_free_all", c.slist_free_all, c.error);
    // Once, before any thread makes a handle: curl_global_init is not thread-safe, and
    // curl_easy_init would otherwise call it from whichever thread comes first.
    if (c.error.empty() && global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) c.error = "curl_global_init failed";
    return c;
  }();
  return lib;
}

}  // namespace SPYGLASS_NAMESPACE::cli
