// CSV time series: fields, timestamps, values.

#include "series.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <type_traits>

#include "civil.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

// Splits one CSV record; `line` has no line terminator. Returns false for a quote that
// is not closed or text after a closing quote.
bool split_record(std::string_view line, std::vector<std::string>& fields) {
  fields.clear();
  std::string cur;
  std::size_t i = 0;
  while (true) {
    cur.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return false;  // unterminated
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        cur.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != ',') return false;
    } else {
      const std::size_t end = line.find(',', i);
      cur.assign(line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
      i = end == std::string_view::npos ? line.size() : end;
    }
    fields.push_back(cur);
    if (i >= line.size()) return true;
    ++i;  // the comma
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A whole string as a finite double.
std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

// Puts the points in time order; points with equal times keep their order in the file.
void sort_by_time(Series& s) {
  std::vector<std::size_t> order(s.times.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return s.times[a] < s.times[b]; });
  const auto permute = [&order](auto& v) {
    std::remove_reference_t<decltype(v)> out;
    out.reserve(v.size());
    for (std::size_t i : order) out.push_back(std::move(v[i]));
    v = std::move(out);
  };
  permute(s.stamps);
  permute(s.times);
  permute(s.values);
  permute(s.lines);
  if (!s.notes.empty()) permute(s.notes);
}

}  // namespace

std::optional<double> parse_timestamp(std::string_view s, TimeUnit unit) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  // A Unix time: a plain number (no '-' after the first character, unlike a date).
  if (s.find_first_of("-:Tt ", 1) == std::string_view::npos) {
    const auto v = parse_double(s);
    if (!v) return std::nullopt;
    if (unit == TimeUnit::automatic) {
      const double a = std::fabs(*v);
      unit = a >= 1e17   ? TimeUnit::nanoseconds
             : a >= 1e14 ? TimeUnit::microseconds
             : a >= 1e11 ? TimeUnit::milliseconds
                         : TimeUnit::seconds;
    }
    switch (unit) {
      case TimeUnit::milliseconds: return *v / 1e3;
      case TimeUnit::microseconds: return *v / 1e6;
      case TimeUnit::nanoseconds: return *v / 1e9;
      default: return *v;
    }
  }
  // A date, extended (YYYY-MM-DD) or basic (YYYYMMDD, then a time).
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  std::size_t i = 0;
  bool basic = false;
  if (digits(s, 0, 4, y) && s.size() >= 10 && s[4] == '-' && digits(s, 5, 2, mo) && s[7] == '-' &&
      digits(s, 8, 2, d)) {
    i = 10;
  } else if (digits(s, 0, 4, y) && digits(s, 4, 2, mo) && digits(s, 6, 2, d) && s.size() > 8 &&
             (s[8] == 'T' || s[8] == 't')) {
    i = 8;
    basic = true;
  } else {
    return std::nullopt;
  }
  static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap)) return std::nullopt;
  double frac = 0, offset = 0;
  if (i < s.size()) {
    // The time: HH:MM[:SS[.frac]] (extended) or HHMM[SS[.frac]] (basic).
    if (s[i] != 'T' && s[i] != 't' && (basic || s[i] != ' ')) return std::nullopt;
    const auto colon = [&] {
      if (basic) return true;
      if (i >= s.size() || s[i] != ':') return false;
      ++i;
      return true;
    };
    ++i;
    if (!digits(s, i, 2, h)) return std::nullopt;
    i += 2;
    if (!colon() || !digits(s, i, 2, mi)) return std::nullopt;
    i += 2;
    bool seconds = false;
    if (basic ? digits(s, i, 2, sec) : (i < s.size() && s[i] == ':')) {
      if (!basic && (++i, !digits(s, i, 2, sec))) return std::nullopt;
      i += 2;
      seconds = true;
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;  // 60: a leap second
    if (seconds && i < s.size() && (s[i] == '.' || s[i] == ',')) {
      const std::size_t start = i + 1;
      std::size_t end = start;
      while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
      if (end == start) return std::nullopt;
      double scale = 0.1;
      for (std::size_t k = start; k < end; ++k, scale /= 10) frac += (s[k] - '0') * scale;
      i = end;
    }
    if (i < s.size()) {
      const std::string_view zone = s.substr(i);
      unsigned zh = 0, zm = 0;
      if (zone == "Z" || zone == "z") {
        // UTC
      } else if ((zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2, zh) &&
                 ((zone.size() == 6 && zone[3] == ':' && digits(zone, 4, 2, zm)) ||
                  (zone.size() == 5 && digits(zone, 3, 2, zm)) || zone.size() == 3) &&
                 zh < 24 && zm < 60) {
        offset = (zone[0] == '+' ? 1.0 : -1.0) * (zh * 3600.0 + zm * 60.0);
      } else {
        return std::nullopt;
      }
    }
  }
  const double days = static_cast<double>(days_from_civil(y, mo, d));
  return days * 86400.0 + h * 3600.0 + mi * 60.0 + sec + frac - offset;
}

std::optional<TimeUnit> parse_time_unit(std::string_view s) {
  if (s == "auto") return TimeUnit::automatic;
  if (s == "s") return TimeUnit::seconds;
  if (s == "ms") return TimeUnit::milliseconds;
  if (s == "us") return TimeUnit::microseconds;
  if (s == "ns") return TimeUnit::nanoseconds;
  return std::nullopt;
}

Series read_csv_series(const std::string& path, const std::string& time_column,
                       const std::string& value_column, TimeUnit unit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open: " + std::strerror(errno));
  std::string line;
  std::vector<std::string> fields;
  std::size_t lineno = 0;
  // The header: the first line that is not empty.
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (!trim(line).empty()) break;
  }
  if (trim(line).empty()) throw InputError(path + ": empty file (no header line)");
  if (!split_record(line, fields))
    throw InputError(path + ":" + std::to_string(lineno) + ": malformed quoted field");
  std::size_t tcol = fields.size(), vcol = fields.size();
  std::string names;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const std::string_view name = trim(fields[i]);
    if (name == time_column && tcol == fields.size()) tcol = i;
    if (name == value_column && vcol == fields.size()) vcol = i;
    names += (i ? ", " : "") + std::string(name);
  }
  auto require = [&](std::size_t col, const std::string& name, const char* what) {
    if (col == fields.size()) {
      throw InputError(path + ":" + std::to_string(lineno) + ": no " + what + " column '" + name +
                       "' in the header (columns: " + names + ")");
    }
  };
  require(tcol, time_column, "time");
  require(vcol, value_column, "value");
  const std::size_t width = fields.size();
  Series s;
  double last_time = -HUGE_VAL;  // the latest time so far, and where it was
  std::size_t last_line = 0;
  std::string last_stamp;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    if (!split_record(line, fields)) throw InputError(where + "malformed quoted field");
    if (fields.size() != width) {
      throw InputError(where + "expected " + std::to_string(width) + " fields as in the header, got " +
                       std::to_string(fields.size()));
    }
    const std::string_view stamp = trim(fields[tcol]);
    const auto t = parse_timestamp(stamp, unit);
    if (!t) {
      throw InputError(where + "column '" + time_column + "': not a timestamp: '" + std::string(stamp) +
                       "' (expected ISO 8601, YYYY-MM-DD HH:MM:SS or a Unix time)");
    }
    if (*t < last_time && s.unsorted.empty()) {
      s.unsorted = path + ":" + std::to_string(lineno) + ": '" + std::string(stamp) + "' is before line " +
                   std::to_string(last_line) + "'s '" + last_stamp + "'";
    }
    if (*t >= last_time) last_time = *t, last_line = lineno, last_stamp = stamp;
    const std::string_view raw = trim(fields[vcol]);
    if (raw.empty() || raw == "NaN" || raw == "nan" || raw == "NA" || raw == "null") {
      ++s.missing;
      continue;
    }
    const auto v = parse_double(raw);
    if (!v)
      throw InputError(where + "column '" + value_column + "': not a number: '" + std::string(raw) + "'");
    s.stamps.emplace_back(stamp);
    s.times.push_back(*t);
    s.values.push_back(*v);
    s.lines.push_back(lineno);
  }
  if (in.bad()) throw InputError(path + ": read error: " + std::strerror(errno));
  if (!s.unsorted.empty()) sort_by_time(s);
  return s;
}

}  // namespace SPYGLASS_NAMESPACE::cli
