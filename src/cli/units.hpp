#pragma once
// The units the spyglass command reads: durations and sizes, the same for `run`'s limits
// and `gate`'s thresholds.

#include <optional>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// A finite, non-negative number at the start of `s`; `rest` is what follows it.
std::optional<double> parse_number(std::string_view s, std::string_view& rest);

/// Seconds in `s`: a number with us, ms, s, m or h (plain numbers are seconds); nullopt
/// when it is not a duration.
std::optional<double> parse_seconds(std::string_view s);

/// Bytes in `s`: a number with B, K/k/KiB, M/MiB or G/GiB (powers of 1024; plain numbers
/// are bytes); nullopt when it is not a size.
std::optional<double> parse_bytes(std::string_view s);

/// A value of a metric whose unit (metric_unit()) is `unit`: seconds for "s", bytes for
/// "bytes", and for "" (a custom metric's plain number) any finite number, else a
/// duration, else a size; nullopt when it is none of them.
std::optional<double> parse_quantity(std::string_view unit, std::string_view value);

/// What parse_quantity takes for `unit`, in words for an error: "a duration (a number
/// with us, ms, s, m or h)".
const char* quantity_words(std::string_view unit);

}  // namespace SPYGLASS_NAMESPACE::cli
