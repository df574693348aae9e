#include "format.hpp"

namespace SPYGLASS_NAMESPACE::jsonl {

namespace detail {

namespace {
/// Two decimal digits of `v` (< 100).
inline void put2(char* p, unsigned v) noexcept {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}
}  // namespace

void format_date_time(std::uint64_t sec, char* out) noexcept {
  // Days since 1970-01-01 to a proleptic Gregorian date: shift the epoch to 0000-03-01 so
  // that the leap day ends the year, then split into 400-year eras (146097 days each), the
  // year of the era and the day of that March-based year.
  const std::uint64_t days = sec / 86400;
  const auto sod = static_cast<unsigned>(sec % 86400);
  const std::uint64_t z = days + 719468;  // days from 0000-03-01 to 1970-01-01
  const std::uint64_t era = z / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);                    // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                                     // March = 0
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const std::uint64_t year = era * 400 + yoe + (month <= 2 ? 1 : 0);

  const auto y = static_cast<unsigned>(year % 10000);
  put2(out, y / 100);
  put2(out + 2, y % 100);
  out[4] = '-';
  put2(out + 5, month);
  out[7] = '-';
  put2(out + 8, day);
  out[10] = 'T';
  put2(out + 11, sod / 3600);
  out[13] = ':';
  put2(out + 14, sod / 60 % 60);
  out[16] = ':';
  put2(out + 17, sod % 60);
}

}  // namespace detail

void format_rfc3339(std::uint64_t unix_ns, char* out) noexcept {
  detail::LineFormatter{}.timestamp(unix_ns, out);
}

void append_line(const Event& event, std::string& out) { detail::LineFormatter{}.append(event, out); }

}  // namespace SPYGLASS_NAMESPACE::jsonl
