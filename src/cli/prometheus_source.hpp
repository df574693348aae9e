#pragma once
// A time series read from a Prometheus server's range-query API: the input of
// `spyglass detect --prometheus` and `spyglass analyze --prometheus`.

#include <optional>
#include <string>
#include <string_view>

#include "series.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// One range query against a Prometheus server.
struct PrometheusQuery {
  std::string url;            ///< the server's base URL (a path prefix is kept)
  std::string query;          ///< PromQL selecting exactly one series
  double start = 0, end = 0;  ///< Unix seconds
  double step = 0;            ///< seconds between points
  double timeout = 30;        ///< seconds the whole request may take
};

/// The one series `q` selects, read through `GET /api/v1/query_range`. A point's stamp is
/// its time as Prometheus wrote it (Unix seconds); a point whose value is NaN or infinite
/// counts as missing. Throws InputError: the server cannot be reached or answers with an
/// HTTP error, Prometheus refuses the query (its error is quoted), or the query selects
/// no series or several (their labels are listed).
Series read_prometheus_series(const PrometheusQuery& q);

/// Unix seconds of a time argument: `now`, `now-DURATION` (e.g. `now-6h`), or what
/// parse_timestamp() reads. `now` is given. nullopt when it is none of these.
std::optional<double> parse_time_argument(std::string_view s, double now);

}  // namespace SPYGLASS_NAMESPACE::cli
