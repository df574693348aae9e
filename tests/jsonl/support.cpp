#include "support.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sgtest {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = "/tmp/spyglass-jsonl-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

namespace {

// Every complete line of `content` must parse with simdjson as an object, and jq must
// read every one of them with `fromjson`. A trailing line without '\n' is the unfinished
// tail of an active file and is not checked.
void check_jsonl_content(const fs::path& file, const std::string& content) {
  const std::size_t end = content.rfind('\n');
  if (end == std::string::npos) return;
  const std::string complete = content.substr(0, end + 1);
  simdjson::dom::parser parser;
  std::size_t start = 0;
  for (std::size_t nl = complete.find('\n'); nl != std::string::npos; nl = complete.find('\n', start)) {
    const std::string line = complete.substr(start, nl - start);
    simdjson::dom::object obj;
    if (parser.parse(line).get_object().get(obj) != simdjson::SUCCESS) {
      ADD_FAILURE() << "simdjson cannot read a line of " << file << ": " << line;
    }
    start = nl + 1;
  }
  const fs::path copy = file.string() + ".check";
  { std::ofstream(copy, std::ios::binary) << complete; }
  int status = -1;
  const std::string err = run("jq -R fromjson '" + copy.string() + "' 2>&1 >/dev/null", &status);
  if (status != 0) ADD_FAILURE() << "jq cannot read " << file << " (exit " << status << "): " << err;
}

}  // namespace

void check_jsonl_files(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_regular_file(ec) && (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))) {
      files.push_back(it->path());
    }
  }
  for (const fs::path& f : files) {
    try {
      check_jsonl_content(f, f.extension() == ".gz" ? gunzip_file(f) : read_file(f));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot read " << f << ": " << e.what();
    }
  }
}

TempDir::~TempDir() {
  check_jsonl_files(path_);
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string gunzip_file(const fs::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("gzopen failed: " + p.string());
  std::string out;
  char buf[65536];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  const bool ok = n == 0;
  gzclose(f);
  if (!ok) throw std::runtime_error("gzread failed: " + p.string());
  return out;
}

std::vector<fs::path> list_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (start != text.size()) lines.push_back(text.substr(start));
  return lines;
}

std::string run(const std::string& cmd, int* status) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  if (status != nullptr) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

spyglass::Event make_event(std::uint64_t i) {
  static const char* const kNames[] = {"GET /users/{id}", "compute_totals", "SELECT * FROM t WHERE id = ?",
                                       "cache.warmup"};
  static const char* const kDetails[] = {"POST", "", "postgresql", ""};
  spyglass::Event e;
  e.kind = static_cast<spyglass::EventKind>(i % 4);
  e.name = kNames[i % 4];
  e.detail = kDetails[i % 4];
  e.start = 1'795'000'000'000'000'000ULL + i * 1'234'567ULL;
  e.duration = 1000 + i * 7;
  e.trace_id = {0x0123456789abcdefULL + i, 0xfedcba9876543210ULL ^ i};
  e.span_id = i + 1;
  e.parent_span_id = i % 3 == 0 ? 0 : 0xabcdef0000000000ULL + i;
  e.thread_id = static_cast<std::uint32_t>(1000 + i % 5);
  e.status = i % 5 == 4 ? spyglass::Status::error : spyglass::Status::ok;
  e.http_status = static_cast<std::uint16_t>(200 + i % 300);
  e.bytes_in = i * 3;
  e.bytes_out = i * 11;
  e.rows = i * 2;
  return e;
}

bool parse_line(const std::string& line, Parsed& out) {
  out = Parsed{};
  // The DOM parser validates the whole text (trailing content included) before use.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line).get(doc) != simdjson::SUCCESS) {
    ADD_FAILURE() << "simdjson cannot parse: " << line;
    return false;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    ADD_FAILURE() << "not an object: " << line;
    return false;
  }
  for (const simdjson::dom::key_value_pair field : obj) {
    const std::string_view key = field.key;
    const simdjson::dom::element v = field.value;
    ++out.members;
    auto str = [&](std::string& dst) {
      std::string_view sv;
      if (v.get_string().get(sv) != simdjson::SUCCESS) return false;
      dst.assign(sv);
      return true;
    };
    auto number = [&](std::uint64_t& dst) { return v.get_uint64().get(dst) == simdjson::SUCCESS; };
    bool good = true;
    if (key == "ts") {
      good = str(out.ts);
    } else if (key == "kind") {
      good = str(out.kind);
    } else if (key == "name") {
      good = str(out.name);
    } else if (key == "dur_ns") {
      good = number(out.dur_ns);
    } else if (key == "trace_id") {
      good = str(out.trace_id);
    } else if (key == "span_id") {
      good = str(out.span_id);
    } else if (key == "parent_span_id") {
      good = out.has_parent = str(out.parent_span_id);
    } else if (key == "thread") {
      good = number(out.thread);
    } else if (key == "status") {
      good = str(out.status);
    } else if (key == "http_status") {
      good = out.has_http = number(out.http_status);
    } else if (key == "bytes_in") {
      good = number(out.bytes_in);
    } else if (key == "bytes_out") {
      good = number(out.bytes_out);
    } else if (key == "method") {
      good = out.has_method = str(out.method);
    } else if (key == "rows") {
      good = out.has_rows = number(out.rows);
    } else if (key == "db_system") {
      good = out.has_db_system = str(out.db_system);
    } else if (key == "server") {
      good = out.has_server = str(out.server);
    } else {
      ADD_FAILURE() << "unexpected member '" << key << "' in " << line;
      return false;
    }
    if (!good) {
      ADD_FAILURE() << "bad value of '" << key << "' in " << line;
      return false;
    }
  }
  return true;
}

bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling interval, not a bound
  }
  return true;
}

}  // namespace sgtest
