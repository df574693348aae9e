// The history in PostgreSQL: what only a server shows (foreign databases, bad URLs,
// refused connections), the CLI with --db and SPYGLASS_DB, many writer processes at once,
// a server that is down when a run ends, and a connection lost as a run commits. Rows are
// checked with psql, the real client.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../support/postgres_server.hpp"
#include "history_records.hpp"
#include "spyglass/monitor/history.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

namespace {

spyglass::test::PostgresServer& server() {
  static spyglass::test::PostgresServer s;
  return s;
}

spyglass_test::Result psql(const std::string& url, const std::string& sql) {
  return spyglass_test::run({std::string(SPYGLASS_PG_BINDIR) + "/psql", "-X", "-A", "-t", "-q", "-v",
                             "ON_ERROR_STOP=1", "-d", url, "-c", sql});
}

// A fresh database on the server; its URL.
std::string fresh_database() {
  static int counter = 0;
  const std::string name = "pg_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const auto r = psql(server().url(), "CREATE DATABASE " + name);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return server().url(name);
}

// A loopback port nothing listens on.
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A TCP proxy to the server that, on its first connection, passes everything until the
// reply to the COMMIT of the transaction that inserted a run, and then closes both sides
// instead of passing that reply: the run is committed, and the client cannot know it.
// Later connections are passed through untouched.
class LosesTheFirstCommitReply {
 public:
  explicit LosesTheFirstCommitReply(std::uint16_t server_port) : server_port_(server_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~LosesTheFirstCommitReply() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    for (auto& t : pipes_) t.join();
    ::close(listener_);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] bool dropped() const { return dropped_; }

 private:
  void accept_loop() {
    for (bool first = true; !stop_; first = false) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(server_port_);
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      pipes_.emplace_back([this, client, upstream, first] { pipe(client, upstream, first); });
    }
  }

  // Passes bytes both ways until either side closes; on the armed connection, watches the
  // client's text for the run's INSERT and then the server's for the COMMIT's tag.
  void pipe(int client, int upstream, bool armed) {
    std::string from_client, from_server;  // what was seen, for the patterns
    bool inserted = false;
    char buf[16384];
    pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    while (::poll(fds, 2, -1) > 0) {
      bool closed = false;
      for (int k = 0; k < 2 && !closed; ++k) {
        if (fds[k].revents == 0) continue;
        const ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
        if (n <= 0) {
          closed = true;
          break;
        }
        if (armed && k == 0 && !inserted) {
          from_client.append(buf, static_cast<std::size_t>(n));
          inserted = from_client.find("INSERT INTO runs(") != std::string::npos;
        }
        if (armed && k == 1 && inserted) {
          from_server.append(buf, static_cast<std::size_t>(n));
          if (from_server.find(std::string("COMMIT\0", 7)) != std::string::npos) {
            dropped_ = true;
            closed = true;
            break;
          }
        }
        const int to = k == 0 ? upstream : client;
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
          if (w <= 0) {
            closed = true;
            break;
          }
          off += w;
        }
      }
      if (closed) break;
    }
    ::close(client);
    ::close(upstream);
  }

  std::uint16_t server_port_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> dropped_{false};
  std::thread thread_;
  std::vector<std::thread> pipes_;  // only the accept thread adds, the destructor joins
};

std::string contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos ? needle : "'" + needle + "' not in: " + haystack;
}

}  // namespace

TEST(HistoryPostgres, ForeignDatabaseIsRefusedAndUnchanged) {
  const std::string url = fresh_database();
  ASSERT_EQ(psql(url, "CREATE TABLE runs(x INTEGER); INSERT INTO runs VALUES (42)").exit_code, 0);
  try {
    mon::History::open(url);
    FAIL() << "opened a foreign database";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::foreign) << e.what();
    EXPECT_EQ(contains(e.what(), "not a spyglass history"), "not a spyglass history");
  }
  EXPECT_EQ(psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").out, "1\n");
  EXPECT_EQ(psql(url, "SELECT x FROM runs").out, "42\n");
}

TEST(HistoryPostgres, ReadOnlyOpenOfAnEmptyDatabaseFindsNoRunsAndCreatesNothing) {
  const std::string url = fresh_database();
  auto h = mon::History::open(url, {.create = false, .read_only = true});
  EXPECT_TRUE(h.runs({}).empty());
  auto r = history_test::make_run("x", 1);
  EXPECT_THROW(h.insert(r, {}, 0), mon::HistoryError);
  EXPECT_EQ(psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").out, "0\n");
  EXPECT_THROW(mon::History::open(url, {.create = false}), mon::HistoryError);  // nothing to write to
}

TEST(HistoryPostgres, BadUrlsAreClearErrors) {
  for (const std::string url : {"postgresql://[::1/db", "postgresql://u@127.0.0.1/db?no_such_option=1"}) {
    try {
      mon::History::open(url);
      FAIL() << url;
    } catch (const mon::HistoryError& e) {
      EXPECT_EQ(e.kind(), mon::HistoryErrorKind::bad_url) << e.what();
      EXPECT_EQ(contains(e.what(), "not a valid PostgreSQL URL"), "not a valid PostgreSQL URL");
    }
  }
  // The CLI stops before running the command.
  spyglass_test::TempDir dir;
  const auto r = spyglass_test::run(
      {kSpyglass, "run", "--db", "postgresql://[::1/db", "--", kWorkload, "exit", "0"}, dir.path());
  EXPECT_EQ(r.exit_code, 125) << r.err;
  EXPECT_EQ(contains(r.err, "not a valid PostgreSQL URL"), "not a valid PostgreSQL URL");
}

TEST(HistoryPostgres, RefusedConnectionIsAClearErrorWithoutThePassword) {
  const std::string url = "postgresql://someone:s3cret@127.0.0.1:" + std::to_string(closed_port()) + "/db";
  try {
    mon::History::open(url);
    FAIL();
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::unavailable) << e.what();
    EXPECT_EQ(contains(e.what(), "Connection refused"), "Connection refused");
    EXPECT_EQ(contains(e.what(), "postgresql://someone:***@127.0.0.1"), "postgresql://someone:***@127.0.0.1");
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
  spyglass_test::TempDir dir;
  const auto r = spyglass_test::run({kSpyglass, "history", "--db", url}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(contains(r.err, "Connection refused"), "Connection refused");
}

TEST(HistoryPostgres, CommandsTakeTheUrlFromDbOrSpyglassDb) {
  const std::string url = fresh_database();
  spyglass_test::TempDir dir;
  auto r = spyglass_test::run(
      {kSpyglass, "run", "-q", "--db", url, "--label", "job", "--", kWorkload, "exit", "0"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = spyglass_test::run(
      {"env", "SPYGLASS_DB=" + url, kSpyglass, "run", "-q", "--label", "job", "--", kWorkload, "exit", "3"},
      dir.path());
  ASSERT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out"));  // nothing local
  EXPECT_EQ(psql(url, "SELECT id, label, exit_code FROM runs ORDER BY id").out, "1|job|0\n2|job|3\n");

  r = spyglass_test::run({"env", "SPYGLASS_DB=" + url, kSpyglass, "history", "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser p;
  simdjson::dom::array runs = p.parse(r.out);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(std::string_view(runs.at(0)["label"]), "job");
  r = spyglass_test::run({kSpyglass, "show", "1", "--db", url}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = spyglass_test::run({kSpyglass, "baseline", "pin", "1", "--db", url}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(psql(url, "SELECT label, run_id FROM baselines").out, "job|1\n");
  // analyze and gate read the same history.
  r = spyglass_test::run(
      {kSpyglass, "run", "-q", "--db", url, "--label", "job", "--", kWorkload, "exit", "0"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = spyglass_test::run(
      {"env", "SPYGLASS_DB=" + url, kSpyglass, "gate", "--label", "job", "--rule", "wall < 600s"},
      dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(contains(r.out + r.err, "(run 3)"), "(run 3)");
  r = spyglass_test::run({kSpyglass, "analyze", "--label", "job", "--db", url}, dir.path());
  EXPECT_EQ(r.exit_code, 1);  // the two successful runs it found are too few
  EXPECT_EQ(contains(r.err, "found 2"), "found 2");
  // --db wins over SPYGLASS_DB.
  r = spyglass_test::run({"env", "SPYGLASS_DB=postgresql://[::1/db", kSpyglass, "history", "--db", url},
                         dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Writers on many machines: 16 processes, each recording 3 runs, all starting on a fresh
// database (so the migration race is part of it).
TEST(HistoryPostgres, SixteenConcurrentWriterProcessesRecordEveryRunExactlyOnce) {
  const std::string url = fresh_database();
  spyglass_test::TempDir dir;
  constexpr int kWriters = 16, kRuns = 3;
  std::vector<std::unique_ptr<spyglass_test::Child>> kids;
  for (int w = 0; w < kWriters; ++w) {
    std::string script;
    for (int i = 0; i < kRuns; ++i) {
      script += "'" + kSpyglass + "' run -q --db '" + url + "' --label w" + std::to_string(w) + " -- echo w" +
                std::to_string(w) + "-" + std::to_string(i) + " || exit 1; ";
    }
    kids.push_back(
        std::make_unique<spyglass_test::Child>(std::vector<std::string>{"sh", "-c", script}, dir.path()));
  }
  for (auto& k : kids) {
    const auto r = k->wait();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
  }
  EXPECT_EQ(psql(url, "SELECT count(*), count(DISTINCT id), count(DISTINCT stdout_tail) FROM runs").out,
            "48|48|48\n");
  std::string expected;
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kRuns; ++i) expected += "w" + std::to_string(w) + "-" + std::to_string(i) + "\n|1\n";
  }
  std::string got = psql(url,
                         "SELECT stdout_tail, count(*) FROM runs GROUP BY stdout_tail ORDER BY "
                         "substring(stdout_tail from '[0-9]+')::int, stdout_tail")
                        .out;
  EXPECT_EQ(got, expected);
  EXPECT_EQ(psql(url, "SELECT value FROM spyglass_meta WHERE key = 'user_version'").out,
            std::to_string(mon::History::kSchemaVersion) + "\n");
}

// The run ends while the server is down: its record is written locally, and the loss is
// said on stderr; the command's exit status is kept.
TEST(HistoryPostgres, ServerDownAtTheEndOfARunKeepsTheRunLocally) {
  const std::string url = fresh_database();
  spyglass_test::TempDir dir;
  const std::string fifo = dir / "go";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  spyglass_test::Child run({kSpyglass, "run", "-q", "--db", url, "--label", "lost", "--", "cat", fifo},
                           dir.path());
  const int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // returns once cat runs: spyglass has connected
  ASSERT_GE(w, 0);
  server().stop();
  ::close(w);
  const auto r = run.wait();
  server().start();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(contains(r.err, "the run was not recorded in the shared history"),
            "the run was not recorded in the shared history");
  std::vector<std::filesystem::path> kept;
  for (const auto& e : std::filesystem::directory_iterator(dir / "spyglass-out/unsaved"))
    kept.push_back(e.path());
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(contains(r.err, kept[0].filename().string()), kept[0].filename().string());
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.load(kept[0].string());
  EXPECT_EQ(std::string_view(doc["run"]["label"]), "lost");
  EXPECT_EQ(std::int64_t(doc["run"]["exit_code"]), 0);
  EXPECT_EQ(psql(url, "SELECT count(*) FROM runs").out, "0\n");
}

// The run is committed but the reply to the COMMIT is lost (the connection drops): the
// retry on a new connection finds the run instead of recording it a second time.
TEST(HistoryPostgres, LostCommitReplyRecordsTheRunOnce) {
  const std::string url = fresh_database();
  ASSERT_EQ(psql(url, "SELECT 1").exit_code, 0);
  LosesTheFirstCommitReply proxy(server().port());
  // The same database through the proxy.
  const std::string via = "postgresql://" +
                          url.substr(url.find("://") + 3, url.find('@') - url.find("://") - 3) +
                          "@127.0.0.1:" + std::to_string(proxy.port()) + url.substr(url.rfind('/'));
  spyglass_test::TempDir dir;
  const auto r =
      spyglass_test::run({kSpyglass, "run", "-q", "--db", via, "--label", "once", "--", "true"}, dir.path());
  EXPECT_TRUE(proxy.dropped()) << "the proxy never saw the run's COMMIT";
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(psql(url, "SELECT count(*) FROM runs WHERE label = 'once'").out, "1\n") << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out/unsaved")) << r.err;
}

// The server is down when the run starts and back when it ends: the run is recorded.
TEST(HistoryPostgres, ServerBackByTheEndOfARunGetsTheRun) {
  const std::string url = fresh_database();
  spyglass_test::TempDir dir;
  const std::string fifo = dir / "go";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  server().stop();
  spyglass_test::Child run({kSpyglass, "run", "-q", "--db", url, "--label", "late", "--", "cat", fifo},
                           dir.path());
  const int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // cat runs: the first connection has failed
  ASSERT_GE(w, 0);
  server().start();
  ::close(w);
  const auto r = run.wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(contains(r.err, "trying again at the end of the run"), "trying again at the end of the run");
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out"));
  EXPECT_EQ(psql(url, "SELECT label FROM runs").out, "late\n");
}
