// Errors: clear exceptions at construction for a directory that cannot be created; write
// errors (file size limit, a full file system) counted without throwing, no torn lines,
// and recovery once writing works again.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <csignal>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "spyglass/exporters/jsonl.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
namespace sg = spyglass;

namespace {

std::vector<sg::Event> events_range(std::uint64_t from, std::uint64_t to) {
  std::vector<sg::Event> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(sgtest::make_event(i));
  return v;
}

std::vector<std::uint64_t> ids_between(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(i + 1);
  return v;
}

/// Span ids of a file's lines; the file must end with '\n' and hold only complete lines.
std::vector<std::uint64_t> file_ids(const fs::path& f) {
  const std::string text = sgtest::read_file(f);
  EXPECT_TRUE(text.empty() || text.ends_with('\n')) << f;
  std::vector<std::uint64_t> ids;
  for (const auto& line : sgtest::split_lines(text)) {
    sgtest::Parsed p;
    if (!sgtest::parse_line(line, p)) break;
    ids.push_back(std::stoull(p.span_id, nullptr, 16));
  }
  return ids;
}

/// Expects exactly `count` warnings since `log` was made, and the first one to be received
/// (unless the log's rate limit held it back) with every string of `parts` in it.
void expect_warnings(const sgtest::LogCapture& log, std::uint64_t count,
                     const std::vector<std::string>& parts) {
  EXPECT_EQ(log.warnings(), count);
  const auto records = log.records();
  if (records.empty()) {
    EXPECT_GT(sg::log_counts().suppressed, 0u) << "a warning was neither delivered nor suppressed";
    return;
  }
  for (const auto& p : parts)
    EXPECT_NE(records[0].find(p), std::string::npos) << "'" << p << "' not in: " << records[0];
}

/// Expects the constructor to throw E with a message containing every string of `parts`.
template <typename E>
void expect_throw(const sg::JsonlOptions& o, const std::vector<std::string>& parts) {
  try {
    sg::JsonlExporter ex(o);
    ADD_FAILURE() << "no exception for directory '" << o.directory << "' file '" << o.file_name << "'";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in: " << what;
  }
}

}  // namespace

TEST(JsonlErrors, DirectoryUnderARegularFileIsAClearError) {
  sgtest::TempDir tmp;
  const fs::path file = tmp.path() / "file.txt";
  { std::ofstream(file) << "x"; }
  sg::JsonlOptions o;
  o.directory = (file / "sub").string();
  expect_throw<std::system_error>(o, {o.directory, "Not a directory"});
  try {
    sg::JsonlExporter ex(o);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::not_a_directory);
  }
}

TEST(JsonlErrors, DirectoryThatIsARegularFileIsAClearError) {
  sgtest::TempDir tmp;
  const fs::path file = tmp.path() / "file.txt";
  { std::ofstream(file) << "x"; }
  sg::JsonlOptions o;
  o.directory = file.string();
  expect_throw<std::system_error>(o, {o.directory});
}

TEST(JsonlErrors, DirectoryUnderProcIsAClearError) {
  sg::JsonlOptions o;
  o.directory = "/proc/spyglass-no-such-dir/out";
  expect_throw<std::system_error>(o, {o.directory, "cannot create directory"});
  // /proc/self exists and is a directory, but no file can be created in it.
  o.directory = "/proc/self";
  expect_throw<std::system_error>(o, {"/proc/self/", "cannot create file"});
}

TEST(JsonlErrors, BadOptionsAreRejected) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = "";
  expect_throw<std::invalid_argument>(o, {"directory"});
  o.directory = tmp.str();
  o.file_name = "";
  expect_throw<std::invalid_argument>(o, {"file name"});
  o.file_name = "sub/x.jsonl";
  expect_throw<std::invalid_argument>(o, {"sub/x.jsonl"});
  EXPECT_TRUE(sgtest::list_files(tmp.path()).empty());
}

TEST(JsonlErrors, FileSizeLimitIsCountedUndoneAndRecovered) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 0;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 120);
  ASSERT_TRUE(ex.export_batch({ev.data(), 10}));
  const auto good_size = fs::file_size(ex.current_path());
  ASSERT_LT(good_size, 4096u);

  // RLIMIT_FSIZE makes writes beyond 4096 bytes fail (EFBIG) after a short write: a torn
  // line the exporter must take back.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  bool ok = true;
  {
    sgtest::LogCapture log;
    EXPECT_NO_THROW(ok = ex.export_batch({ev.data() + 10, 100}));
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
    std::signal(SIGXFSZ, old_handler);
    // Reported through the log hook, with the file and the reason.
    expect_warnings(log, 1, {"jsonl: cannot write 100 line(s) to " + ex.current_path(), "File too large"});
  }

  EXPECT_FALSE(ok);
  EXPECT_EQ(ex.write_errors(), 1u);
  EXPECT_EQ(ex.lines_written(), 10u);
  EXPECT_EQ(fs::file_size(ex.current_path()), good_size);  // the partial write was undone

  // Writes work again: the exporter goes on in the same file.
  ASSERT_TRUE(ex.export_batch({ev.data() + 110, 10}));
  EXPECT_EQ(ex.write_errors(), 1u);
  EXPECT_EQ(ex.lines_written(), 20u);
  const std::string path = ex.current_path();
  ex.shutdown();
  auto want = ids_between(0, 10);
  for (auto id : ids_between(110, 120)) want.push_back(id);
  EXPECT_EQ(file_ids(path), want);
  EXPECT_EQ(ex.bytes_written(), fs::file_size(path));
}

TEST(JsonlErrors, DirectoryReplacedByAFileIsCountedAndRecovered) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = (tmp.path() / "out").string();
  o.max_file_bytes = 1;  // every batch after the first rotates and opens a new file
  o.max_files = 0;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 3);
  ASSERT_TRUE(ex.export_batch({ev.data(), 1}));
  fs::remove_all(o.directory);
  { std::ofstream(o.directory) << "in the way"; }
  bool ok = true;
  {
    sgtest::LogCapture log;
    EXPECT_NO_THROW(ok = ex.export_batch({ev.data() + 1, 1}));
    expect_warnings(log, 1, {"jsonl: cannot create file " + o.directory, "Not a directory"});
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(ex.write_errors(), 1u);
  EXPECT_TRUE(ex.current_path().empty());
  fs::remove(o.directory);
  ASSERT_TRUE(ex.export_batch({ev.data() + 2, 1}));  // directory created again
  const std::string path = ex.current_path();
  ex.shutdown();
  EXPECT_EQ(file_ids(path), ids_between(2, 3));
  EXPECT_EQ(ex.write_errors(), 1u);
}

namespace {
/// A tiny tmpfs mounted for one test (needs root and a sandbox that allows mounts).
class TinyTmpfs {
 public:
  explicit TinyTmpfs(const fs::path& at) : at_(at) {
    fs::create_directories(at);
    mounted_ = ::mount("tmpfs", at.c_str(), "tmpfs", 0, "size=64k") == 0;
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
  }
  TinyTmpfs(const TinyTmpfs&) = delete;
  TinyTmpfs& operator=(const TinyTmpfs&) = delete;
  [[nodiscard]] bool mounted() const { return mounted_; }

 private:
  fs::path at_;
  bool mounted_ = false;
};
}  // namespace

TEST(JsonlErrors, FullFileSystemIsCountedAndRecovered) {
  sgtest::TempDir tmp;
  TinyTmpfs fsys(tmp.path() / "mnt");
  if (!fsys.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (not root or no mount permission)";
  const fs::path filler = tmp.path() / "mnt" / "filler";
  { std::ofstream(filler) << std::string(24 * 1024, 'f'); }

  sg::JsonlOptions o;
  o.directory = (tmp.path() / "mnt" / "out").string();
  o.max_file_bytes = 0;
  sg::JsonlExporter ex(o);
  const auto ev = events_range(0, 5000);
  std::size_t pos = 0;
  bool failed = false;
  while (pos + 50 <= ev.size()) {
    bool ok = true;
    EXPECT_NO_THROW(ok = ex.export_batch({ev.data() + pos, 50}));
    pos += 50;
    if (!ok) {
      failed = true;
      break;
    }
  }
  ASSERT_TRUE(failed) << "the 64k file system never filled up";
  EXPECT_EQ(ex.write_errors(), 1u);
  const std::uint64_t written = pos - 50;
  EXPECT_EQ(ex.lines_written(), written);
  EXPECT_EQ(file_ids(ex.current_path()), ids_between(0, written));  // nothing torn

  // Failing again while still full is counted again and does not crash.
  EXPECT_FALSE(ex.export_batch({ev.data() + pos, 50}));
  EXPECT_EQ(ex.write_errors(), 2u);
  pos += 50;

  fs::remove(filler);  // room again
  ASSERT_TRUE(ex.export_batch({ev.data() + pos, 20}));
  EXPECT_EQ(ex.write_errors(), 2u);
  const std::string path = ex.current_path();
  ex.shutdown();
  auto want = ids_between(0, written);
  for (auto id : ids_between(pos, pos + 20)) want.push_back(id);
  EXPECT_EQ(file_ids(path), want);
}
