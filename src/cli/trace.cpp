// `spyglass trace`: reading JSONL spans, merging files, Chrome trace events, folded stacks.

#include "trace.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory_resource>
#include <queue>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include "civil.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

constexpr std::uint64_t kNsPerDay = 86400ULL * 1000000000ULL;
constexpr std::size_t kInitialBuffer = std::size_t{1} << 20;
constexpr std::size_t kMaxLine = std::size_t{64} << 20;

// A map from span id to V that keeps the `cap` most recently inserted keys: the oldest
// is evicted (and handed to a callback) when one more is inserted. Memory is bounded by
// `cap` entries whatever the input size.
template <class V>
class BoundedIndex {
 public:
  explicit BoundedIndex(std::size_t cap) : cap_(std::max<std::size_t>(cap, 1)) {
    map_.reserve(std::min<std::size_t>(cap_, 1 << 16));  // most inputs stay below; no early rehashing
  }

  V* find(std::uint64_t k) {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : &it->second.value;
  }

  // The value of `k`, default-constructed when new; `evicted(V&&)` receives what made room.
  template <class F>
  V& get(std::uint64_t k, F&& evicted) {
    auto [it, inserted] = map_.try_emplace(k);
    if (inserted) {
      it->second.seq = ++seq_;
      order_.emplace_back(k, seq_);
      while (map_.size() > cap_ && !order_.empty()) {
        const auto [ok, os] = order_.front();
        order_.pop_front();
        auto old = map_.find(ok);
        if (old != map_.end() && old->second.seq == os) {
          evicted(std::move(old->second.value));
          map_.erase(old);
        }
      }
    }
    return it->second.value;
  }

  // Removes `k` and returns its value (default when absent).
  V take(std::uint64_t k) {
    V v{};
    auto it = map_.find(k);
    if (it != map_.end()) {
      v = std::move(it->second.value);
      map_.erase(it);
      compact();
    }
    return v;
  }

  template <class F>
  void for_each(F&& f) {
    for (auto& [k, e] : map_) f(k, e.value);
  }

 private:
  struct Entry {
    V value{};
    std::uint64_t seq = 0;
  };
  // Drops the order records of erased keys once they outnumber the live ones, so the
  // queue stays within 2 * cap + 64 (amortised O(1) per operation).
  void compact() {
    if (order_.size() <= 2 * cap_ + 64) return;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> live;
    for (const auto& [k, s] : order_) {
      auto it = map_.find(k);
      if (it != map_.end() && it->second.seq == s) live.emplace_back(k, s);
    }
    order_.swap(live);
  }

  std::size_t cap_;
  std::uint64_t seq_ = 0;
  // Nodes come from a pool: every span inserts one and, once the window is full, frees
  // one, which the pool hands out again without a trip to malloc.
  std::pmr::unsynchronized_pool_resource pool_;
  std::pmr::unordered_map<std::uint64_t, Entry> map_{&pool_};
  std::deque<std::pair<std::uint64_t, std::uint64_t>> order_;
};

// Value of each hex digit; 0x10 (a bit no digit has) for every other byte.
constexpr auto kHexValue = [] {
  struct Table {
    std::uint8_t v[256] = {};
  } t;
  for (auto& x : t.v) x = 0x10;
  for (int c = 0; c < 10; ++c) t.v['0' + c] = static_cast<std::uint8_t>(c);
  for (int c = 0; c < 6; ++c) {
    t.v['a' + c] = static_cast<std::uint8_t>(10 + c);
    t.v['A' + c] = static_cast<std::uint8_t>(10 + c);
  }
  return t;
}();

// Exactly 16 hex digits as a number.
bool hex64(std::string_view s, std::uint64_t& v) {
  if (s.size() != 16) return false;
  std::uint64_t r = 0;
  unsigned bad = 0;
  for (const char c : s) {
    const unsigned d = kHexValue.v[static_cast<unsigned char>(c)];
    bad |= d;
    r = r << 4 | (d & 0xf);
  }
  v = r;
  return (bad & 0x10) == 0;
}

bool two_digits(const char* p, unsigned& v) {
  if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return false;
  v = static_cast<unsigned>((p[0] - '0') * 10 + (p[1] - '0'));
  return true;
}

// Whether the raw key `k` (after its opening quote) is the literal: a fixed-size compare
// the compiler inlines, the closing quote included. The line's padding makes the bytes
// past a short key readable.
template <std::size_t N>
bool is(const char* k, const char (&lit)[N]) {
  return std::memcmp(k, lit, N - 1) == 0 && k[N - 1] == '"';
}

using detail::put_lit;
using detail::put_u64;

// Microseconds from `from` to `ns` with three decimals, so that no nanosecond is lost.
char* put_us(char* p, std::uint64_t ns, std::uint64_t from) {
  std::uint64_t d = ns - from;
  if (ns < from) {
    *p++ = '-';
    d = from - ns;
  }
  p = put_u64(p, d / 1000);
  const auto frac = static_cast<unsigned>(d % 1000);
  p[0] = '.';
  p[1] = static_cast<char>('0' + frac / 100);
  p[2] = static_cast<char>('0' + frac / 10 % 10);
  p[3] = static_cast<char>('0' + frac % 10);
  return p + 4;
}

// (pid, thread) as one key: threads are 32-bit ids (see the JSONL schema).
std::uint64_t thread_key(std::uint32_t pid, std::uint64_t thread) {
  return std::uint64_t{pid} << 32 | (thread & 0xffffffffULL);
}

}  // namespace

namespace {

constexpr std::size_t kMinuteChars = 17;  // "YYYY-MM-DDTHH:MM:"

// Unix ns of the minute `YYYY-MM-DDTHH:MM:` that starts `s` (at least 17 characters).
bool parse_minute(const char* p, std::uint64_t& ns) {
  unsigned yh = 0, yl = 0, mo = 0, d = 0, h = 0, mi = 0;
  if (!two_digits(p, yh) || !two_digits(p + 2, yl) || p[4] != '-' || !two_digits(p + 5, mo) || p[7] != '-' ||
      !two_digits(p + 8, d) || (p[10] != 'T' && p[10] != 't') || !two_digits(p + 11, h) || p[13] != ':' ||
      !two_digits(p + 14, mi) || p[16] != ':') {
    return false;
  }
  const unsigned year = yh * 100 + yl;
  if (year < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59) return false;
  const auto days = static_cast<std::uint64_t>(days_from_civil(year, mo, d));
  ns = (days * 86400 + h * 3600ULL + mi * 60ULL) * 1000000000ULL;
  return true;
}

// Nanoseconds into the minute of `SS[.f{1,9}]Z`, the rest of `s` after the minute.
bool parse_in_minute(std::string_view s, std::uint64_t& ns) {
  const char* p = s.data();
  unsigned se = 0;
  if (s.size() < 20 || s.back() != 'Z' || !two_digits(p + 17, se) || se > 60) return false;
  std::uint64_t frac = 0;
  const std::size_t rest = s.size() - 20;  // between the seconds and the Z
  if (rest > 0) {
    if (p[19] != '.' || rest < 2 || rest > 10) return false;
    for (std::size_t i = 20; i < s.size() - 1; ++i) {
      if (p[i] < '0' || p[i] > '9') return false;
      frac = frac * 10 + static_cast<std::uint64_t>(p[i] - '0');
    }
    for (std::size_t i = rest - 1; i < 9; ++i) frac *= 10;
  }
  ns = se * 1000000000ULL + frac;
  return true;
}

}  // namespace

bool parse_rfc3339_ns(std::string_view s, std::uint64_t& ns) {
  // YYYY-MM-DDTHH:MM:SS, then an optional fraction of 1 to 9 digits, then Z.
  std::uint64_t minute = 0, in_minute = 0;
  if (s.size() < 20 || !parse_minute(s.data(), minute) || !parse_in_minute(s, in_minute)) return false;
  ns = minute + in_minute;
  return true;
}

bool JsonlSpanReader::parse_time(std::string_view s, std::uint64_t& ns) {
  // Lines come in time order, so most share the previous line's minute.
  if (s.size() >= 20 && std::memcmp(s.data(), minute_text_, kMinuteChars) == 0) {
    std::uint64_t in_minute = 0;
    if (!parse_in_minute(s, in_minute)) return false;
    ns = minute_ns_ + in_minute;
    return true;
  }
  if (!parse_rfc3339_ns(s, ns)) return false;
  std::memcpy(minute_text_, s.data(), kMinuteChars);
  parse_minute(s.data(), minute_ns_);
  return true;
}

// ---------------------------------------------------------------------------------------
// Reader

struct JsonlSpanReader::Parser {
  simdjson::ondemand::parser parser;
};

JsonlSpanReader::JsonlSpanReader(std::string path)
    : path_(std::move(path)), cap_(kInitialBuffer), parser_(std::make_unique<Parser>()) {
  if (path_ == "-") {
    fd_ = STDIN_FILENO;
  } else {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(path_ + ": " + std::strerror(errno));
  }
  buf_ = std::make_unique<char[]>(cap_ + simdjson::SIMDJSON_PADDING);
}

JsonlSpanReader::~JsonlSpanReader() {
  if (fd_ > STDIN_FILENO) ::close(fd_);
}

bool JsonlSpanReader::next_line(std::string_view& line) {
  while (true) {
    char* b = buf_.get();
    if (begin_ < end_) {
      const auto* nl = static_cast<const char*>(std::memchr(b + begin_, '\n', end_ - begin_));
      if (nl != nullptr) {
        const auto at = static_cast<std::size_t>(nl - b);
        const std::size_t from = begin_;
        begin_ = at + 1;
        if (discarding_) {
          discarding_ = false;
          continue;
        }
        ++line_no_;
        line = std::string_view(b + from, at - from);
        return true;
      }
    }
    if (eof_) {
      if (begin_ < end_ && !discarding_) {
        ++line_no_;
        line = std::string_view(b + begin_, end_ - begin_);
        begin_ = end_;
        return true;
      }
      return false;
    }
    if (discarding_) {
      begin_ = end_ = 0;
    } else if (begin_ > 0) {
      std::memmove(b, b + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == cap_) {
      if (cap_ >= kMaxLine) {
        // Report the line now; its remainder is skipped on the next call.
        ++line_no_;
        begin_ = end_ = 0;
        discarding_ = true;
        throw InputError(path_ + ":" + std::to_string(line_no_) + ": a line longer than 64 MiB");
      }
      auto bigger = std::make_unique<char[]>(2 * cap_ + simdjson::SIMDJSON_PADDING);
      std::memcpy(bigger.get(), b, end_);
      buf_ = std::move(bigger);
      cap_ *= 2;
      b = buf_.get();
    }
    const ssize_t n = ::read(fd_, b + end_, cap_ - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError(path_ + ": " + std::strerror(errno));
    }
    if (n == 0) {
      eof_ = true;
    } else {
      if (end_ == 0 && line_no_ == 0 && n >= 2 && static_cast<unsigned char>(b[0]) == 0x1f &&
          static_cast<unsigned char>(b[1]) == 0x8b) {
        throw InputError(path_ + ": gzip-compressed; read it with: zcat " + path_ + " | spyglass trace -");
      }
      end_ += static_cast<std::size_t>(n);
    }
  }
}

bool JsonlSpanReader::next(SpanRecord& out) {
  std::string_view line;
  while (next_line(line)) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    parse(line, out);
    return true;
  }
  return false;
}

void JsonlSpanReader::parse(std::string_view line, SpanRecord& out) {
  const auto fail = [&](const std::string& why) {
    throw InputError(path_ + ":" + std::to_string(line_no_) + ": " + why);
  };
  const auto bad = [&](std::string_view key, const char* what) {
    fail("\"" + std::string(key) + "\": " + what);
  };
  // The On-Demand parser reads the line where it lies (the buffer has SIMDJSON_PADDING
  // bytes after any line) and builds no tree: each member is looked at once, in order.
  const std::size_t room =
      cap_ + simdjson::SIMDJSON_PADDING - static_cast<std::size_t>(line.data() - buf_.get());
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (parser_->parser.iterate(line.data(), line.size(), room).get(doc)) fail("not valid JSON");
  if (const auto e = doc.get_object().get(obj))
    fail(e == simdjson::INCORRECT_TYPE ? "not a JSON object" : "not valid JSON");
  out = SpanRecord{};
  enum : unsigned {
    kTs = 1,
    kKind = 2,
    kName = 4,
    kDur = 8,
    kTrace = 16,
    kSpan = 32,
    kThread = 64,
    kStatus = 128
  };
  unsigned have = 0;
  for (auto member : obj) {
    // By reference: a copy of the field, stored in parts and loaded whole, stalls on
    // store forwarding once per member.
    if (member.error()) fail("not valid JSON");
    simdjson::ondemand::field& f = member.value_unsafe();
    // The key as written: keys of the schema need no escapes.
    const char* k = f.key().raw();
    simdjson::ondemand::value& v = f.value();
    std::string_view s;
    std::uint64_t n = 0;
    const auto str = [&](unsigned bit, std::string_view key) __attribute__((always_inline)) {
      if (const auto e = v.get_string().get(s)) {
        if (e != simdjson::INCORRECT_TYPE) fail("not valid JSON");
        bad(key, "not a string");
      }
      have |= bit;
      return s;
    };
    // A string without escapes is taken where it lies in the line, its token peeked
    // without a copy; one with escapes (or not a string) goes through get_string().
    const auto text = [&](unsigned bit, std::string_view key) __attribute__((always_inline)) {
      std::string_view t = v.raw_json_token();
      if (t.size() >= 2 && t[0] == '"') {
        t = t.substr(1, t.find_last_of('"') - 1);
        if (std::find(t.begin(), t.end(), '\\') == t.end()) {  // short: no call to memchr
          have |= bit;
          return t;
        }
      }
      return str(bit, key);
    };
    const auto num = [&](unsigned bit, std::string_view key) __attribute__((always_inline)) {
      if (v.get_uint64().get(n)) bad(key, "not an unsigned integer");
      have |= bit;
      return n;
    };
    // Dispatch on the first letter: a line has a dozen members to tell apart.
    switch (k[0]) {
      case 't':
        if (is(k, "ts")) {
          if (!parse_time(text(kTs, "ts"), out.start_ns)) bad("ts", "not an RFC 3339 UTC time");
        } else if (is(k, "trace_id")) {
          out.trace_id = text(kTrace, "trace_id");
          std::uint64_t hi = 0, lo = 0;
          if (out.trace_id.size() != 32 || !hex64(out.trace_id.substr(0, 16), hi) ||
              !hex64(out.trace_id.substr(16), lo)) {
            bad("trace_id", "not 32 hex digits");
          }
        } else if (is(k, "thread")) {
          out.thread = num(kThread, "thread");
        }
        break;
      case 'k':
        if (is(k, "kind")) out.kind = text(kKind, "kind");
        break;
      case 'n':
        if (is(k, "name")) out.name = text(kName, "name");
        break;
      case 'd':
        if (is(k, "dur_ns")) {
          out.dur_ns = num(kDur, "dur_ns");
        } else if (is(k, "db_system")) {
          out.db_system = text(0, "db_system");
        }
        break;
      case 's':
        if (is(k, "span_id")) {
          out.span_hex = text(kSpan, "span_id");
          if (!hex64(out.span_hex, out.span_id) || out.span_id == 0)
            bad("span_id", "not 16 hex digits (and not 0)");
        } else if (is(k, "status")) {
          out.status = text(kStatus, "status");
        }
        break;
      case 'p':
        if (is(k, "parent_span_id")) {
          out.parent_hex = text(0, "parent_span_id");
          if (!hex64(out.parent_hex, out.parent_span_id)) bad("parent_span_id", "not 16 hex digits");
        }
        break;
      case 'h':
        if (is(k, "http_status")) {
          out.http_status = num(0, "http_status");
          out.has_http = true;
        }
        break;
      case 'b':
        if (is(k, "bytes_in")) {
          out.bytes_in = num(0, "bytes_in");
          out.has_http = true;
        } else if (is(k, "bytes_out")) {
          out.bytes_out = num(0, "bytes_out");
          out.has_http = true;
        }
        break;
      case 'm':
        if (is(k, "method")) out.method = text(0, "method");
        break;
      case 'r':
        if (is(k, "rows")) {
          out.rows = num(0, "rows");
          out.has_rows = true;
        }
        break;
      default: break;
    }
    // Other members are skipped unread: a newer writer may add some.
  }
  // Past the object's end there must be nothing: no second value on the line.
  const char* rest = nullptr;
  if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS) fail("not valid JSON");
  if (have != 255) {
    static constexpr const char* kNames[] = {"ts",       "kind",    "name",   "dur_ns",
                                             "trace_id", "span_id", "thread", "status"};
    for (unsigned i = 0; i < 8; ++i) {
      if ((have & (1U << i)) == 0) fail(std::string("no \"") + kNames[i] + "\"");
    }
  }
  if (out.start_ns + out.dur_ns < out.start_ns) bad("dur_ns", "out of range");
}

// ---------------------------------------------------------------------------------------
// Merging inputs; parents and children

TraceStats convert_spans(const std::vector<std::string>& inputs, const TraceOptions& options,
                         const std::vector<SpanSink*>& sinks) {
  TraceStats stats;
  std::vector<std::unique_ptr<JsonlSpanReader>> readers;
  readers.reserve(inputs.size());
  for (const auto& path : inputs) readers.push_back(std::make_unique<JsonlSpanReader>(path));
  std::vector<SpanRecord> heads(readers.size());

  // The next span of input i, skipping (and counting) bad lines when asked to.
  const auto advance = [&](std::size_t i) {
    while (true) {
      try {
        return readers[i]->next(heads[i]);
      } catch (const InputError& e) {
        if (!options.skip_bad) throw;
        ++stats.bad_lines;
        if (options.on_bad) options.on_bad(e.what());
      }
    }
  };
  using Head = std::pair<std::uint64_t, std::size_t>;  // (end ns, input)
  std::priority_queue<Head, std::vector<Head>, std::greater<>> queue;
  for (std::size_t i = 0; i < readers.size(); ++i) {
    if (advance(i)) queue.emplace(heads[i].end_ns(), i);
  }

  for (auto* s : sinks) s->begin(inputs);

  // Per recent span id: where the span ran, once it came, and its children that came
  // before it. One entry per span, so one lookup for the span and one for its parent.
  struct Node {
    bool seen = false;
    SpanPlace place;
    std::vector<SpanPlace> waiting;
  };
  BoundedIndex<Node> index(options.window);
  std::unordered_set<std::uint64_t> threads;
  std::uint64_t waiting = 0;  // children in the index still waiting for their parent
  const auto lost = [&](Node&& n) {
    stats.without_parent += n.waiting.size();
    waiting -= n.waiting.size();
  };
  const auto link = [&](const SpanPlace& parent, const SpanPlace& child) {
    if (parent.pid == child.pid && parent.thread == child.thread) return;
    ++stats.flows;
    for (auto* s : sinks) s->flow(parent, child);
  };

  while (!queue.empty()) {
    const std::size_t i = queue.top().second;
    queue.pop();
    const SpanRecord& span = heads[i];
    const auto pid = static_cast<std::uint32_t>(i + 1);
    ++stats.spans;
    threads.insert(thread_key(pid, span.thread));
    for (auto* s : sinks) s->span(pid, span);

    const SpanPlace here{pid, span.thread, span.start_ns, span.end_ns()};
    Node& me = index.get(span.span_id, lost);
    for (const auto& child : me.waiting) link(here, child);
    waiting -= me.waiting.size();
    std::vector<SpanPlace>().swap(me.waiting);
    me.seen = true;
    me.place = here;
    if (span.parent_span_id != 0) {
      Node* parent = index.find(span.parent_span_id);
      if (parent != nullptr && parent->seen) {
        link(parent->place, here);
      } else {
        (parent != nullptr ? *parent : index.get(span.parent_span_id, lost)).waiting.push_back(here);
        ++waiting;
      }
    }
    if (advance(i)) queue.emplace(heads[i].end_ns(), i);
  }
  stats.without_parent += waiting;  // counted, not walked: the index is large and cold by now
  stats.threads = threads.size();
  for (auto* s : sinks) s->end(stats);
  return stats;
}

// ---------------------------------------------------------------------------------------
// Chrome Trace Event Format

ChromeTraceSink::ChromeTraceSink(std::FILE* out) : out_(out) { buf_.reserve(kInitialBuffer + 4096); }

void ChromeTraceSink::drain(bool force) {
  if (buf_.empty() || (!force && buf_.size() < kInitialBuffer)) return;
  if (std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) {
    throw std::runtime_error(std::string("cannot write the trace: ") + std::strerror(errno));
  }
  buf_.clear();
}

void ChromeTraceSink::event_head(const char* ph, std::uint32_t pid, std::uint64_t tid) {
  buf_.append(first_ ? "\n" : ",\n");
  first_ = false;
  buf_.append(R"({"ph":")").append(ph).append(R"(","pid":)");
  char num[24];
  buf_.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, pid).ptr - num));
  buf_.append(R"(,"tid":)");
  buf_.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, tid).ptr - num));
}

void ChromeTraceSink::us(std::uint64_t ns, std::uint64_t from) {
  char num[32];
  buf_.append(num, static_cast<std::size_t>(put_us(num, ns, from) - num));
}

void ChromeTraceSink::begin(const std::vector<std::string>& inputs) {
  buf_.append(R"({"traceEvents":[)");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string& in = inputs[i];
    const std::string name = in == "-" ? std::string("stdin") : in.substr(in.find_last_of('/') + 1);
    event_head("M", static_cast<std::uint32_t>(i + 1), 0);
    JsonWriter w(buf_);
    buf_.append(R"(,"name":"process_name","args":{"name":)");
    w.value(name);
    buf_.append("}}");
  }
}

void ChromeTraceSink::span(std::uint32_t pid, const SpanRecord& s) {
  if (!have_origin_) {
    have_origin_ = true;
    origin_ns_ = s.start_ns - s.start_ns % kNsPerDay;
  }
  if (named_threads_.try_emplace(thread_key(pid, s.thread), true).second) {
    event_head("M", pid, s.thread);
    buf_.append(R"(,"name":"thread_name","args":{"name":"thread )");
    char num[24];
    buf_.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, s.thread).ptr - num));
    buf_.append("\"}}");
  }
  // The event is written in place at the end of the buffer, grown once for the longest it
  // can be: the fixed parts (ids were checked to be 16 or 32 hex digits) and each text at
  // 6 bytes per byte, its longest escape.
  const std::size_t texts =
      s.name.size() + s.kind.size() + s.status.size() + s.method.size() + s.db_system.size();
  const std::size_t used = buf_.size();
  buf_.resize(used + 512 + 6 * texts);
  char* const start = buf_.data() + used;
  char* p = put_lit(start, first_ ? std::string_view("\n") : std::string_view(",\n"));
  first_ = false;
  p = put_lit(p, R"({"ph":"X","pid":)");
  p = put_u64(p, pid);
  p = put_lit(p, R"(,"tid":)");
  p = put_u64(p, s.thread);
  p = put_lit(p, R"(,"ts":)");
  p = put_us(p, s.start_ns, origin_ns_);
  p = put_lit(p, R"(,"dur":)");
  p = put_us(p, s.dur_ns, 0);
  p = put_lit(p, R"(,"name":")");
  p = json_escape(s.name, p);
  p = put_lit(p, R"(","cat":")");
  p = json_escape(s.kind, p);
  p = put_lit(p, R"(","args":{"trace_id":")");
  p = put_lit(p, s.trace_id);
  p = put_lit(p, R"(","span_id":")");
  p = put_lit(p, s.span_hex);
  if (s.parent_span_id != 0) {
    p = put_lit(p, R"(","parent_span_id":")");
    p = put_lit(p, s.parent_hex);
  }
  p = put_lit(p, R"(","status":")");
  p = json_escape(s.status, p);
  *p++ = '"';
  if (s.has_http) {
    p = put_lit(p, R"(,"http_status":)");
    p = put_u64(p, s.http_status);
    p = put_lit(p, R"(,"bytes_in":)");
    p = put_u64(p, s.bytes_in);
    p = put_lit(p, R"(,"bytes_out":)");
    p = put_u64(p, s.bytes_out);
  }
  if (s.has_rows) {
    p = put_lit(p, R"(,"rows":)");
    p = put_u64(p, s.rows);
  }
  const auto text = [&](std::string_view key, std::string_view v) {
    if (v.empty()) return;
    p = put_lit(p, key);
    p = json_escape(v, p);
    *p++ = '"';
  };
  text(R"(,"method":")", s.method);
  text(R"(,"db_system":")", s.db_system);
  p = put_lit(p, "}}");
  buf_.resize(used + static_cast<std::size_t>(p - start));
  drain(false);
}

void ChromeTraceSink::flow(const SpanPlace& parent, const SpanPlace& child) {
  // The start binds to the parent's slice at the moment the child began (kept inside the
  // parent), the end (binding point "e": the enclosing slice) to the child's own slice.
  const std::uint64_t at = std::clamp(child.start_ns, parent.start_ns, parent.end_ns);
  const std::uint64_t id = next_flow_id_++;
  char num[24];
  const std::string_view id_text(
      num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, id).ptr - num));
  event_head("s", parent.pid, parent.thread);
  buf_.append(R"(,"ts":)");
  us(at, origin_ns_);
  buf_.append(R"(,"name":"child","cat":"flow","id":)").append(id_text).push_back('}');
  event_head("f", child.pid, child.thread);
  buf_.append(R"(,"ts":)");
  us(child.start_ns, origin_ns_);
  buf_.append(R"(,"name":"child","cat":"flow","bp":"e","id":)").append(id_text).push_back('}');
}

void ChromeTraceSink::end(const TraceStats& stats) {
  char day[32] = "1970-01-01T00:00:00Z";
  const auto secs = static_cast<std::time_t>(origin_ns_ / 1000000000ULL);
  std::tm tm{};
  if (::gmtime_r(&secs, &tm) != nullptr) std::strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%SZ", &tm);
  buf_.append("\n],\"displayTimeUnit\":\"ns\",\"otherData\":");
  JsonWriter w(buf_);
  w.begin_object();
  w.key("ts_origin");
  w.value(std::string_view(day));
  w.key("ts_origin_unix_ns");
  w.value(origin_ns_);
  w.key("spans");
  w.value(stats.spans);
  w.key("flows");
  w.value(stats.flows);
  w.key("bad_lines");
  w.value(stats.bad_lines);
  w.key("without_parent");
  w.value(stats.without_parent);
  w.end_object();
  buf_.append("}\n");
  drain(true);
  if (std::fflush(out_) != 0)
    throw std::runtime_error(std::string("cannot write the trace: ") + std::strerror(errno));
}

// ---------------------------------------------------------------------------------------
// Folded stacks

namespace {

// Relative stacks ("child;grandchild") under one span, with their self time; and the
// durations of its children per thread, which come off its own self time.
struct Subtree {
  std::unordered_map<std::string, std::int64_t> stacks;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> child_ns;  // (thread key, ns)
};

// A span already folded: enough to find the stack of a child that comes after it.
struct Folded {
  std::uint64_t parent = 0;
  std::uint64_t thread = 0;  // thread key
  std::string frame;
};

// The span's name as a frame: `;` separates frames and the last space the value.
std::string frame_of(const SpanRecord& s) {
  std::string f(s.name.empty() ? "[" + std::string(s.kind) + "]" : std::string(s.name));
  for (char& c : f) {
    if (c == ';') c = ':';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return f;
}

}  // namespace

struct FoldedSink::State {
  explicit State(std::size_t window) : done(window), waiting(window) {}
  BoundedIndex<Folded> done;
  BoundedIndex<Subtree> waiting;
  std::unordered_map<std::string, std::int64_t> total;

  // Adds `sub` below `prefix` ("" or "a;b;") into `into`.
  static void merge(std::unordered_map<std::string, std::int64_t>& into, const std::string& prefix,
                    const std::unordered_map<std::string, std::int64_t>& sub) {
    for (const auto& [k, v] : sub) into[prefix + k] += v;
  }
  // A subtree nobody will claim: its stacks start at its own top frames.
  void orphan(Subtree&& t) { merge(total, "", t.stacks); }
};

FoldedSink::FoldedSink(std::size_t window) : state_(std::make_unique<State>(window)) {}
FoldedSink::~FoldedSink() = default;

void FoldedSink::begin(const std::vector<std::string>&) {}

void FoldedSink::span(std::uint32_t pid, const SpanRecord& s) {
  State& st = *state_;
  const std::uint64_t tk = thread_key(pid, s.thread);
  std::string frame = frame_of(s);
  Subtree children = st.waiting.take(s.span_id);
  auto self = static_cast<std::int64_t>(s.dur_ns);
  for (const auto& [t, ns] : children.child_ns) {
    if (t == tk) self -= static_cast<std::int64_t>(ns);
  }
  Subtree mine;
  mine.stacks.reserve(children.stacks.size() + 1);
  mine.stacks[frame] += self;
  State::merge(mine.stacks, frame + ";", children.stacks);
  const auto orphan = [&st](Subtree&& t) { st.orphan(std::move(t)); };

  if (s.parent_span_id == 0) {
    State::merge(st.total, "", mine.stacks);
  } else if (st.done.find(s.parent_span_id) == nullptr) {
    Subtree& up = st.waiting.get(s.parent_span_id, orphan);
    State::merge(up.stacks, "", mine.stacks);
    auto it =
        std::find_if(up.child_ns.begin(), up.child_ns.end(), [&](const auto& p) { return p.first == tk; });
    if (it == up.child_ns.end()) {
      up.child_ns.emplace_back(tk, s.dur_ns);
    } else {
      it->second += s.dur_ns;
    }
  } else {
    // The parent came first (a child on another thread can end after it): find the stack
    // it went to, through its ancestors, up to a root or to one still waiting.
    std::vector<const Folded*> chain;
    std::uint64_t at = s.parent_span_id;
    const Folded* f = nullptr;
    while (chain.size() < 1024 && (f = st.done.find(at)) != nullptr) {
      chain.push_back(f);
      if (f->parent == 0) break;
      at = f->parent;
    }
    std::string parent_path;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if (!parent_path.empty()) parent_path.push_back(';');
      parent_path += (*it)->frame;
    }
    const bool to_root = !chain.empty() && chain.back()->parent == 0;
    auto& into = to_root ? st.total : st.waiting.get(at, orphan).stacks;
    State::merge(into, parent_path + ";", mine.stacks);
    if (chain.front()->thread == tk) into[parent_path] -= static_cast<std::int64_t>(s.dur_ns);
  }
  st.done.get(s.span_id, [](Folded&&) {}) = Folded{s.parent_span_id, tk, std::move(frame)};
}

void FoldedSink::end(const TraceStats&) {
  State& st = *state_;
  st.waiting.for_each([&](std::uint64_t, Subtree& t) { State::merge(st.total, "", t.stacks); });
  stacks_.clear();
  for (const auto& [k, v] : st.total) {
    if (v > 0) stacks_[k] += static_cast<std::uint64_t>(v);
  }
}

std::string folded_text(const std::map<std::string, std::uint64_t>& stacks) {
  std::string out;
  char num[24];
  for (const auto& [k, v] : stacks) {
    out += k;
    out.push_back(' ');
    out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, v).ptr - num));
    out.push_back('\n');
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
