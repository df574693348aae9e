// CSV time series: fields, timestamps, values.

#include "series.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>

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

}  // namespace

std::optional<double> parse_timestamp(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  // Unix seconds: a plain number (no '-' after the first character, unlike a date).
  if (s.find_first_of("-:T ", 1) == std::string_view::npos) return parse_double(s);
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return std::nullopt;
  }
  static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap)) return std::nullopt;
  double frac = 0, offset = 0;
  std::size_t i = 10;
  if (i < s.size()) {
    if ((s[i] != 'T' && s[i] != 't' && s[i] != ' ') || !digits(s, i + 1, 2, h) || i + 3 >= s.size() ||
        s[i + 3] != ':' || !digits(s, i + 4, 2, mi) || i + 6 >= s.size() || s[i + 6] != ':' ||
        !digits(s, i + 7, 2, sec)) {
      return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;  // 60: a leap second
    i += 9;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
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

Series read_csv_series(const std::string& path, const std::string& time_column,
                       const std::string& value_column) {
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
  double last_time = -HUGE_VAL;
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
    const auto t = parse_timestamp(stamp);
    if (!t) {
      throw InputError(where + "column '" + time_column + "': not a timestamp: '" + std::string(stamp) +
                       "' (expected ISO 8601, YYYY-MM-DD HH:MM:SS or Unix seconds)");
    }
    if (*t < last_time) {
      throw InputError(where + "column '" + time_column + "': time goes backwards ('" + std::string(stamp) +
                       "' is before the line above)");
    }
    last_time = *t;
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
  return s;
}

}  // namespace SPYGLASS_NAMESPACE::cli
