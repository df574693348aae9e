// record_run_metric(): one O_APPEND write of one whole line per call.

#include "spyglass/run_metric.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace SPYGLASS_NAMESPACE {

bool record_run_metric(std::string_view name, double value, std::string_view unit) {
  const char* path = std::getenv(kRunMetricsEnv);
  if (path == nullptr || *path == '\0' || name.empty() || !std::isfinite(value)) return false;
  // Names and units never hold blanks or line breaks: a line is exactly what the reader splits.
  for (const std::string_view part : {name, unit}) {
    for (const char c : part) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return false;
    }
  }
  char number[32];
  std::snprintf(number, sizeof number, "%.17g", value);
  std::string line;
  line.reserve(name.size() + unit.size() + 40);
  line.append(name).append(" ").append(number);
  if (!unit.empty()) line.append(" ").append(unit);
  line += '\n';
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = 0;
  do {
    n = ::write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == static_cast<ssize_t>(line.size());
}

}  // namespace SPYGLASS_NAMESPACE
