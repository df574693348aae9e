#pragma once
// One listening option for every cpp-httplib server of the project (spyglass::http, the
// command's `serve`): a header of its own so that neither includes the other's code.

#include <httplib.h>
#include <sys/socket.h>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::http::detail {

/// Makes `server` bind with SO_REUSEADDR only. cpp-httplib's default also sets
/// SO_REUSEPORT, which lets a second server bind a port in use and take part of its
/// connections; without it that bind fails and the caller reports it.
inline void listen_exclusively(httplib::Server& server) {
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
}

}  // namespace SPYGLASS_NAMESPACE::http::detail
