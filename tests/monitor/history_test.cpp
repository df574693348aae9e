#include "spyglass/monitor/history.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <set>

#include "history_records.hpp"
#include "support.hpp"

using history_test::make_run;
using history_test::make_samples;
using history_test::now_ns;

namespace mon = spyglass::monitor;

TEST(History, ForeignSqliteFileIsRefusedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "other.db";
  ASSERT_EQ(spyglass_test::run({"sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);"}).exit_code,
            0);
  const std::string before = spyglass_test::slurp(db);
  try {
    mon::History::open(db);
    FAIL() << "opened a foreign database";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::foreign);
    EXPECT_NE(std::string(e.what()).find("not a spyglass history"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(db), std::string::npos);
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
  EXPECT_FALSE(std::filesystem::exists(db + "-wal"));
}

TEST(History, NonSqliteFileIsRefusedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "notes.txt";
  std::ofstream(db) << "these are my notes, not a database\n";
  const std::string before = spyglass_test::slurp(db);
  try {
    mon::History::open(db);
    FAIL() << "opened a text file";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::not_a_database);
    EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
}

TEST(History, CorruptFileIsReportedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db);
    for (int i = 0; i < 50; ++i) {
      auto r = make_run("c", i);
      h.insert(r, make_samples(20, 0), 0);
    }
  }  // the last connection checkpoints the WAL into the main file
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  // Overwrite the schema page's b-tree (page 1 after the 100-byte header) with garbage.
  std::string bytes = spyglass_test::slurp(db);
  ASSERT_GT(bytes.size(), 8192u);
  for (std::size_t i = 100; i < 4096; ++i) bytes[i] = static_cast<char>(0xA5);
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  try {
    mon::History::open(db);
    FAIL() << "opened a corrupt database";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::corrupt) << e.what();
    EXPECT_NE(std::string(e.what()).find("left untouched"), std::string::npos) << e.what();
  }
  EXPECT_EQ(spyglass_test::slurp(db), bytes);
}

TEST(History, MissingFileWithoutCreateIsAnError) {
  spyglass_test::TempDir dir;
  EXPECT_THROW(mon::History::open(dir / "absent.db", {.create = false}), mon::HistoryError);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent.db"));
}

TEST(History, ReadOnlyOpenWritesNothing) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db, {.schema_version = 1});  // an older, still readable schema
    auto r = make_run("old", 5);
    h.insert(r, make_samples(3, 0), 0);
  }
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  const std::string before = spyglass_test::slurp(db);
  {
    auto h = mon::History::open(db, {.create = false, .read_only = true});
    EXPECT_EQ(h.schema_version(), 1);  // read as it is, not migrated
    const auto runs = h.runs({});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].label, "old");
    EXPECT_EQ(h.samples(runs[0].id).size(), 3u);
    auto r = make_run("new", 6);
    EXPECT_THROW(h.insert(r, {}, 0), mon::HistoryError);
    EXPECT_THROW(h.apply_retention({.keep_last_per_label = 0, .max_age_days = 0.0, .thin_to = 2}),
                 mon::HistoryError);
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
  const auto q = spyglass_test::run({"sqlite3", db, "PRAGMA user_version; SELECT count(*) FROM runs;"});
  EXPECT_EQ(q.out, "1\n1\n");
}

TEST(History, ReadOnlyOpenOfAnEmptyFileFindsNoRuns) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "empty.db";
  std::ofstream{db};
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  EXPECT_TRUE(h.runs({}).empty());
  EXPECT_FALSE(h.run(1));
  EXPECT_TRUE(h.samples(1).empty());
  EXPECT_EQ(std::filesystem::file_size(db), 0u);
  EXPECT_THROW(mon::History::open(dir / "absent.db", {.create = true, .read_only = true}), mon::HistoryError);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent.db"));
}

// A foreign database next to a hot journal (its writer was killed mid-transaction): any
// read through a writable connection would roll the journal back into the file. Opening
// it for a history must refuse and change neither file.
TEST(History, HotJournalOfAForeignFileIsNotRolledBack) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "other.db";
  ASSERT_EQ(
      spyglass_test::run({"sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES ('keep me');"}).exit_code,
      0);
  ASSERT_TRUE(spyglass_test::make_hot_journal(db));
  const std::string before = spyglass_test::slurp(db), journal = spyglass_test::slurp(db + "-journal");
  for (const bool read_only : {false, true}) {
    try {
      mon::History::open(db, {.create = false, .read_only = read_only});
      FAIL() << "opened a foreign database with a hot journal";
    } catch (const mon::HistoryError& e) {
      EXPECT_NE(std::string(e.what()).find("left untouched"), std::string::npos) << e.what();
    }
    EXPECT_EQ(spyglass_test::slurp(db), before);
    EXPECT_EQ(spyglass_test::slurp(db + "-journal"), journal);
  }
}

TEST(History, ReadOnlyOpenOfATooOldSchemaSaysHowToMigrate) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  // Ours (application_id) but from before version 1: only a writer can bring it forward.
  ASSERT_EQ(spyglass_test::run({"sqlite3", db, "PRAGMA application_id=1397774668; CREATE TABLE runs(id);"})
                .exit_code,
            0);
  try {
    mon::History::open(db, {.create = false, .read_only = true});
    FAIL() << "read a schema older than the oldest readable one";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::older_schema);
    EXPECT_NE(std::string(e.what()).find("schema version 0 is too old"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("spyglass run --db"), std::string::npos) << e.what();
  }
}

// Ages and counts beyond what the database's integers hold mean "keep everything"; a NaN
// or negative age is no rule at all. None of them is an undefined conversion.
