#pragma once
// `spyglass serve`: the history's pages over HTTP (cpp-httplib).

#include <string>

#include "dashboard.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// Serves the pages of the history at `db` on `host`:`port` (0: any free port) until
/// SIGINT or SIGTERM. Prints "serving http://HOST:PORT/" on stdout once it listens.
/// Returns the exit status: 0 after a signal, 1 when the address cannot be bound. Throws
/// HistoryError when the history cannot be opened.
int serve_history(const std::string& db, const std::string& host, int port, const PageOptions& o);

}  // namespace SPYGLASS_NAMESPACE::cli
