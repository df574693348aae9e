#pragma once
// A time series read from a CSV file: the input of `spyglass detect` and `analyze --csv`.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// Bad input: what() names the file and, when it is about one line, the line number.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Points in file (or run) order; a row whose value is empty (or NaN/NA/null) is a missing point:
/// skipped and counted.
struct Series {
  std::vector<std::string> stamps;  ///< each timestamp exactly as written in the file
  std::vector<double> times;        ///< the same as Unix seconds
  std::vector<double> values;       ///< the value column
  std::vector<std::size_t> lines;   ///< 1-based line of each point (a run's id for run history)
  std::vector<std::string> notes;   ///< empty, or per point a note shown at change points (a commit)
  std::size_t missing = 0;          ///< rows without a value
};

/// Unix seconds of `s`: a number (Unix seconds, fractions allowed), or ISO 8601
/// `YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM|±HHMM]`, also with a space for the `T`, or a date
/// `YYYY-MM-DD` alone. Without a zone the time is UTC. nullopt when it is none of these.
std::optional<double> parse_timestamp(std::string_view s);

/// Reads the columns named `time_column` and `value_column` of the CSV file at `path`
/// (RFC 4180: a header line, commas, double-quoted fields with "" inside; CRLF and a UTF-8
/// BOM are accepted). Times must not decrease. Throws InputError naming the line.
Series read_csv_series(const std::string& path, const std::string& time_column,
                       const std::string& value_column);

}  // namespace SPYGLASS_NAMESPACE::cli
