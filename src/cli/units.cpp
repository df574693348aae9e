// Durations and sizes as the spyglass command reads them.

#include "units.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace SPYGLASS_NAMESPACE::cli {

std::optional<double> parse_number(std::string_view s, std::string_view& rest) {
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || !std::isfinite(v) || v < 0) return std::nullopt;
  rest = std::string_view(r.ptr, static_cast<std::size_t>(s.data() + s.size() - r.ptr));
  return v;
}

std::optional<double> parse_seconds(std::string_view s) {
  std::string_view unit;
  const auto v = parse_number(s, unit);
  double mult = 0;
  if (unit.empty() || unit == "s") mult = 1;
  if (unit == "ms") mult = 1e-3;
  if (unit == "us") mult = 1e-6;
  if (unit == "m") mult = 60;
  if (unit == "h") mult = 3600;
  if (!v || mult == 0) return std::nullopt;
  return *v * mult;
}

std::optional<double> parse_bytes(std::string_view s) {
  std::string_view unit;
  const auto v = parse_number(s, unit);
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024.0;
  if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  if (!v || mult == 0) return std::nullopt;
  return *v * mult;
}

std::optional<double> parse_quantity(std::string_view unit, std::string_view value) {
  if (unit == "s") return parse_seconds(value);
  if (unit == "bytes") return parse_bytes(value);
  // A plain number may be negative; a custom metric recorded in seconds or bytes may be
  // given as a duration or a size.
  double x = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), x);
  if (ec == std::errc() && end == value.data() + value.size() && std::isfinite(x)) return x;
  if (auto v = parse_seconds(value)) return v;
  return parse_bytes(value);
}

const char* quantity_words(std::string_view unit) {
  if (unit == "s") return "a duration (a number with us, ms, s, m or h)";
  if (unit == "bytes") return "a size (a number with B, K, KiB, M, MiB, G or GiB)";
  return "a number (or a duration or size)";
}

}  // namespace SPYGLASS_NAMESPACE::cli
