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
  /// Empty, or the first row found out of time order (file, both lines and times): the
  /// points were then sorted by time (stable, so equal times keep the file's order).
  std::string unsorted;
};

/// How a plain number in a time column is read. `automatic` goes by magnitude, as a
/// current Unix time in each unit is about 1.8e9 s, 1.8e12 ms, 1.8e15 us and 1.8e18 ns:
/// |x| >= 1e17 is nanoseconds, >= 1e14 microseconds, >= 1e11 milliseconds (from
/// 1973-03-03), anything smaller seconds (up to the year 5138).
enum class TimeUnit { automatic, seconds, milliseconds, microseconds, nanoseconds };

/// "auto", "s", "ms", "us" or "ns"; nullopt for anything else.
std::optional<TimeUnit> parse_time_unit(std::string_view s);

/// Unix seconds of `s`: a number (a Unix time in `unit`, fractions allowed), or ISO 8601
/// `YYYY-MM-DDTHH:MM[:SS[.frac]][Z|±HH:MM|±HHMM|±HH]`, also with a space for the `T`, or
/// in the basic format `YYYYMMDDTHHMM[SS[.frac]][zone]`, or a date `YYYY-MM-DD` alone.
/// Without a zone the time is UTC. nullopt when it is none of these.
std::optional<double> parse_timestamp(std::string_view s, TimeUnit unit = TimeUnit::automatic);

/// Reads the columns named `time_column` and `value_column` of the CSV file at `path`
/// (RFC 4180: a header line, commas, double-quoted fields with "" inside; CRLF and a UTF-8
/// BOM are accepted). Rows out of time order are sorted (Series::unsorted says so).
/// Throws InputError naming the line.
Series read_csv_series(const std::string& path, const std::string& time_column,
                       const std::string& value_column, TimeUnit unit = TimeUnit::automatic);

}  // namespace SPYGLASS_NAMESPACE::cli
