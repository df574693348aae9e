// The endpoint's sockets, found by their local port: prometheus-cpp's Exposer (and the
// civetweb server under it) hands out its ports but not its descriptors.

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "internal.hpp"

namespace SPYGLASS_NAMESPACE::prom::detail {

namespace {

bool is_tcp_socket_on_port(int fd, std::uint16_t port) noexcept {
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port) == port;
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port) == port;
  return false;
}

}  // namespace

std::size_t close_sockets_on_port(std::uint16_t port) noexcept {
  // Listed first and closed after, so the directory stream is not read while it changes.
  std::vector<int> matches;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  const int own = dirfd(dir);
  try {
    while (const dirent* entry = readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0' || fd == own) continue;
      if (is_tcp_socket_on_port(static_cast<int>(fd), port)) matches.push_back(static_cast<int>(fd));
    }
  } catch (...) {
    // Out of memory: close what was found.
  }
  closedir(dir);
  for (int fd : matches) close(fd);
  return matches.size();
}

}  // namespace SPYGLASS_NAMESPACE::prom::detail
