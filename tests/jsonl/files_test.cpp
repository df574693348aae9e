// Files: directory creation, naming, rotation by size and by time, retention, gzip of
// rotated files, fork, and no event lost or duplicated across files.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/exporters/jsonl.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
namespace sg = spyglass;
using namespace std::chrono_literals;

namespace {

std::vector<sg::Event> events_range(std::uint64_t from, std::uint64_t to) {
  std::vector<sg::Event> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(sgtest::make_event(i));
  return v;
}

/// Reads every file of `dir` in name order (decompressing .gz) and returns the span ids of
/// all lines, checking that each file is non-empty, ends with '\n' and holds only complete,
/// parseable lines.
std::vector<std::uint64_t> read_span_ids(const fs::path& dir, std::size_t* files_out = nullptr) {
  std::vector<std::uint64_t> ids;
  const auto files = sgtest::list_files(dir);
  if (files_out != nullptr) *files_out = files.size();
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const std::string text = f.extension() == ".gz" ? sgtest::gunzip_file(f) : sgtest::read_file(f);
    EXPECT_FALSE(text.empty());
    EXPECT_TRUE(text.ends_with('\n'));
    for (const auto& line : sgtest::split_lines(text)) {
      sgtest::Parsed p;
      if (!sgtest::parse_line(line, p)) return ids;
      ids.push_back(std::stoull(p.span_id, nullptr, 16));
    }
  }
  return ids;
}

/// Lines per file that size rotation must give for `events` written in order: a line
/// goes into the active file unless that would make it exceed `max_bytes` while the file
/// already holds a line (then it starts the next file). Line sizes come from append_line.
std::vector<std::size_t> lines_per_file(const std::vector<sg::Event>& events, std::uint64_t max_bytes) {
  std::vector<std::size_t> files;
  std::uint64_t bytes = 0;
  for (const auto& e : events) {
    std::string line;
    sg::jsonl::append_line(e, line);
    if (files.empty() || (bytes > 0 && bytes + line.size() > max_bytes)) {
      files.push_back(0);
      bytes = 0;
    }
    ++files.back();
    bytes += line.size();
  }
  return files;
}

std::vector<std::uint64_t> iota_ids(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(i + 1);  // make_event: span id i + 1
  return v;
}

}  // namespace

TEST(JsonlFiles, CreatesNestedDirectoryAndNamesFileByTemplate) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = (tmp.path() / "a" / "b" / "c").string();
  o.file_name = "ev-{pid}-{time}.jsonl";
  sg::JsonlExporter ex(o);
  ASSERT_TRUE(fs::is_directory(o.directory));
  const fs::path p = ex.current_path();
  ASSERT_FALSE(p.empty());
  EXPECT_TRUE(fs::exists(p));
  EXPECT_EQ(p.parent_path(), fs::path(o.directory));
  const std::string name = p.filename().string();
  const std::string prefix = "ev-" + std::to_string(::getpid()) + "-";
  ASSERT_TRUE(name.starts_with(prefix)) << name;
  ASSERT_TRUE(name.ends_with(".jsonl")) << name;
  // {time}: yyyymmddTHHMMSS, UTC, close to now.
  const std::string t = name.substr(prefix.size(), 15);
  ASSERT_EQ(t.size(), 15u);
  EXPECT_EQ(t[8], 'T');
  int status = -1;
  const std::string now = sgtest::run("date -u +%Y%m%dT%H%M%S", &status);
  EXPECT_EQ(now.substr(0, 11), t.substr(0, 11)) << "file time far from now: " << t;  // same 10 minutes
  EXPECT_EQ(ex.name(), "jsonl");
}

TEST(JsonlFiles, EmptyFileIsRemovedAtShutdownAndCallsAfterShutdownFail) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  sg::JsonlExporter ex(o);
  EXPECT_EQ(sgtest::list_files(tmp.path()).size(), 1u);
  ex.flush();
  ex.shutdown();
  EXPECT_TRUE(sgtest::list_files(tmp.path()).empty());
  const auto ev = events_range(0, 1);
  EXPECT_FALSE(ex.export_batch(ev));
  EXPECT_EQ(ex.lines_written(), 0u);
}

TEST(JsonlFiles, SameSecondNamesGetSequenceNumbersAndSortInOrder) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 1;  // every line in a file of its own
  o.max_files = 0;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 30);
  for (const auto& e : ev) ASSERT_TRUE(ex.export_batch({&e, 1}));
  ex.shutdown();
  std::size_t files = 0;
  EXPECT_EQ(read_span_ids(tmp.path(), &files), iota_ids(0, 30));  // name order == write order
  EXPECT_EQ(files, 30u);
  EXPECT_EQ(ex.files_rotated(), 29u);
  std::set<std::string> names;
  for (const auto& f : sgtest::list_files(tmp.path())) names.insert(f.filename().string());
  EXPECT_EQ(names.size(), 30u);
}

TEST(JsonlFiles, RotatesBySizeWithoutLosingOrSplittingLines) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 4096;
  o.max_files = 0;
  o.write_buffer_bytes = 1000;  // several writes per batch, too
  sg::JsonlExporter ex(o);
  const std::uint64_t n = 3000;
  const auto ev = events_range(0, n);
  // Uneven batch sizes, so rotation falls at every position within a batch.
  std::size_t pos = 0;
  for (std::size_t k = 1; pos < ev.size(); k = k * 3 % 97 + 1) {
    const std::size_t len = std::min(k, ev.size() - pos);
    ASSERT_TRUE(ex.export_batch({ev.data() + pos, len}));
    pos += len;
  }
  ex.shutdown();
  std::size_t files = 0;
  const auto ids = read_span_ids(tmp.path(), &files);
  EXPECT_EQ(ids, iota_ids(0, n));
  EXPECT_EQ(files, lines_per_file(ev, o.max_file_bytes).size());
  EXPECT_EQ(ex.files_rotated(), files - 1);
  EXPECT_EQ(ex.lines_written(), n);
  std::uint64_t total = 0;
  const auto all = sgtest::list_files(tmp.path());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto size = fs::file_size(all[i]);
    EXPECT_LE(size, o.max_file_bytes) << all[i];
    // Lines are shorter than 400 bytes, so a rotated file is nearly full.
    if (i + 1 < all.size()) {
      EXPECT_GT(size, o.max_file_bytes - 400) << "rotated early: " << all[i];
    }
    total += size;
  }
  EXPECT_EQ(ex.bytes_written(), total);
}

TEST(JsonlFiles, LineLongerThanMaxGetsAFileOfItsOwn) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 200;
  o.max_files = 0;
  sg::JsonlExporter ex(o);
  const std::string long_name(1000, 'x');
  auto ev = events_range(0, 3);
  ev[1].name = long_name.c_str();
  ASSERT_TRUE(ex.export_batch(ev));
  ex.shutdown();
  std::size_t files = 0;
  EXPECT_EQ(read_span_ids(tmp.path(), &files), iota_ids(0, 3));
  EXPECT_EQ(files, 3u);
}

TEST(JsonlFiles, RotatesByTime) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 0;
  o.rotate_interval = 100ms;
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the exporter's clock too
  const auto interval_passed_since = [&](Clock::time_point t) {
    return Clock::now() - t >= o.rotate_interval;
  };
  const auto before_open = Clock::now();
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 40);
  ASSERT_TRUE(ex.export_batch({ev.data(), 10}));
  // flush() rotates once the file has been open for the interval, and not before.
  ASSERT_TRUE(sgtest::wait_for([&] {
    ex.flush();
    return ex.files_rotated() == 1;
  }));
  EXPECT_TRUE(interval_passed_since(before_open));

  // export_batch() rotates first when the interval has passed: the next file is opened by
  // this write, and once it is due the following batch starts a new one.
  ASSERT_TRUE(ex.export_batch({ev.data() + 10, 10}));
  // The file was opened inside that call, so before now: wait an interval from here.
  const auto after_second = Clock::now();
  ASSERT_TRUE(sgtest::wait_for([&] { return interval_passed_since(after_second); }));
  const auto before_third = Clock::now();
  ASSERT_TRUE(ex.export_batch({ev.data() + 20, 10}));
  EXPECT_EQ(ex.files_rotated(), 2u);
  ex.flush();
  if (!interval_passed_since(before_third)) {
    EXPECT_EQ(ex.files_rotated(), 2u) << "rotated before the interval";
  }

  // After a rotation no file is open until the next write: nothing more to rotate.
  ASSERT_TRUE(sgtest::wait_for([&] {
    ex.flush();
    return ex.files_rotated() == 3;
  }));
  const auto after_rotation = Clock::now();
  ASSERT_TRUE(sgtest::wait_for([&] { return interval_passed_since(after_rotation); }));
  ex.flush();
  EXPECT_EQ(ex.files_rotated(), 3u);
  ASSERT_TRUE(ex.export_batch({ev.data() + 30, 10}));
  ex.shutdown();
  std::size_t files = 0;
  EXPECT_EQ(read_span_ids(tmp.path(), &files), iota_ids(0, 40));
  EXPECT_EQ(files, 4u);
}

TEST(JsonlFiles, RetentionKeepsTheNewestRotatedFiles) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 2048;
  o.max_files = 3;
  sg::JsonlExporter ex(o);
  const std::uint64_t n = 500;
  const auto ev = events_range(0, n);
  for (std::size_t i = 0; i < n; i += 25) ASSERT_TRUE(ex.export_batch({ev.data() + i, 25}));
  const auto per_file = lines_per_file(ev, o.max_file_bytes);
  ASSERT_GT(per_file.size(), 4u);  // the test needs retention to delete files
  EXPECT_EQ(ex.files_rotated(), per_file.size() - 1);
  EXPECT_EQ(sgtest::list_files(tmp.path()).size(), 4u);  // 3 rotated + the active file
  ex.shutdown();
  std::size_t files = 0;
  const auto ids = read_span_ids(tmp.path(), &files);
  EXPECT_EQ(files, 4u);
  ASSERT_FALSE(ids.empty());
  // What is left is a contiguous tail of the events: the oldest files went first.
  EXPECT_EQ(ids, iota_ids(n - ids.size(), n));
  const std::size_t kept = per_file[per_file.size() - 1] + per_file[per_file.size() - 2] +
                           per_file[per_file.size() - 3] + per_file[per_file.size() - 4];
  EXPECT_EQ(ids.size(), kept);
}

TEST(JsonlFiles, RetentionNeverTouchesOtherFiles) {
  sgtest::TempDir tmp;
  const fs::path foreign = tmp.path() / "spyglass-19990101T000000.jsonl";
  { std::ofstream(foreign) << "{}\n"; }
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 1024;
  o.max_files = 1;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 100);
  ASSERT_TRUE(ex.export_batch(ev));
  ex.shutdown();
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_EQ(sgtest::list_files(tmp.path()).size(), 3u);  // foreign + 1 rotated + last
}

TEST(JsonlFiles, GzipsRotatedFiles) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 8192;
  o.max_files = 0;
  o.gzip_rotated = true;
  sg::JsonlExporter ex(o);
  const std::uint64_t n = 1000;
  const auto ev = events_range(0, n);
  for (std::size_t i = 0; i < n; i += 100) ASSERT_TRUE(ex.export_batch({ev.data() + i, 100}));
  ex.shutdown();
  EXPECT_EQ(ex.write_errors(), 0u);
  const auto files = sgtest::list_files(tmp.path());
  std::size_t gz = 0, plain = 0;
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    if (name.ends_with(".jsonl.gz"))
      ++gz;
    else if (name.ends_with(".jsonl"))
      ++plain;
    else
      ADD_FAILURE() << "unexpected file " << name;  // e.g. a leftover .tmp
  }
  EXPECT_EQ(plain, 1u);  // the last, active file stays uncompressed
  EXPECT_EQ(gz, ex.files_rotated());
  EXPECT_EQ(gz, lines_per_file(ev, o.max_file_bytes).size() - 1);
  std::size_t count = 0;
  EXPECT_EQ(read_span_ids(tmp.path(), &count), iota_ids(0, n));  // zlib-decompressed
  // gzip(1) agrees on one of them.
  for (const auto& f : files) {
    if (f.extension() != ".gz") continue;
    int status = -1;
    const std::string out = sgtest::run("gzip -dc '" + f.string() + "'", &status);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(out, sgtest::gunzip_file(f));
    EXPECT_LE(out.size(), o.max_file_bytes);
    EXPECT_LT(fs::file_size(f), out.size() / 2);  // actually compressed
    break;
  }
}

TEST(JsonlFiles, GzipWithRetentionDeletesCompressedFiles) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 4096;
  o.max_files = 2;
  o.gzip_rotated = true;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 400);
  ASSERT_TRUE(ex.export_batch(ev));
  ex.shutdown();
  const auto per_file = lines_per_file(ev, o.max_file_bytes);
  ASSERT_GT(per_file.size(), 3u);  // the test needs retention to delete files
  EXPECT_EQ(ex.files_rotated(), per_file.size() - 1);
  std::size_t files = 0;
  const auto ids = read_span_ids(tmp.path(), &files);
  EXPECT_EQ(files, 3u);
  EXPECT_EQ(ids, iota_ids(400 - ids.size(), 400));
  EXPECT_EQ(ids.size(),
            per_file[per_file.size() - 1] + per_file[per_file.size() - 2] + per_file[per_file.size() - 3]);
}

TEST(JsonlFiles, ForkedChildWritesItsOwnFile) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 20);
  ASSERT_TRUE(ex.export_batch({ev.data(), 5}));
  const std::string parent_file = ex.current_path();

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ex.after_fork_child();
    int code = 0;
    if (ex.lines_written() != 0) code |= 1;
    if (!ex.export_batch({ev.data() + 10, 3})) code |= 2;
    const std::string mine = ex.current_path();
    if (mine == parent_file || mine.find("-" + std::to_string(::getpid()) + ".jsonl") == std::string::npos)
      code |= 4;
    if (ex.lines_written() != 3) code |= 8;
    ex.shutdown();
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  ASSERT_TRUE(ex.export_batch({ev.data() + 5, 5}));
  EXPECT_EQ(ex.current_path(), parent_file);
  ex.shutdown();

  const auto files = sgtest::list_files(tmp.path());
  ASSERT_EQ(files.size(), 2u);
  const fs::path child_file = files[0].string() == parent_file ? files[1] : files[0];
  EXPECT_NE(child_file.filename().string().find(std::to_string(pid)), std::string::npos) << child_file;
  auto ids_of = [](const fs::path& f) {
    std::vector<std::uint64_t> ids;
    for (const auto& line : sgtest::split_lines(sgtest::read_file(f))) {
      sgtest::Parsed p;
      if (sgtest::parse_line(line, p)) ids.push_back(std::stoull(p.span_id, nullptr, 16));
    }
    return ids;
  };
  EXPECT_EQ(ids_of(parent_file), iota_ids(0, 10));
  EXPECT_EQ(ids_of(child_file), iota_ids(10, 13));
}

TEST(JsonlFiles, CountersAreReadableFromAnotherThread) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 16384;
  o.max_files = 0;
  sg::JsonlExporter ex(o);
  std::atomic<bool> done{false};
  std::uint64_t last_seen = 0;
  bool monotonic = true;
  std::thread reader([&] {
    while (!done.load()) {
      const auto l = ex.lines_written();
      if (l < last_seen) monotonic = false;
      last_seen = l;
      (void)ex.bytes_written();
      (void)ex.files_rotated();
      (void)ex.write_errors();
    }
  });
  const auto ev = events_range(0, 2000);
  for (std::size_t i = 0; i < ev.size(); i += 50) ASSERT_TRUE(ex.export_batch({ev.data() + i, 50}));
  done = true;
  reader.join();
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(ex.lines_written(), 2000u);
  EXPECT_EQ(ex.files_rotated(), lines_per_file(ev, o.max_file_bytes).size() - 1);
  EXPECT_EQ(ex.write_errors(), 0u);
}
