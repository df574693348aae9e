// SQL redaction: tables of queries and their redacted forms, plus the guarantees
// (bounded output, idempotence, no leak of unterminated literals).
#include "spyglass/redact.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace sg = spyglass;

namespace {

struct Case {
  const char* sql;
  const char* want;
};

void check_table(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    const std::string got = sg::redact_sql(c.sql);
    EXPECT_EQ(got, c.want) << "input: " << c.sql;
    EXPECT_LE(got.size(), std::string_view(c.sql).size()) << c.sql;
    EXPECT_EQ(sg::redact_sql(got), got) << "not idempotent on: " << c.sql;
  }
}

TEST(RedactSql, SingleQuotedStrings) {
  check_table({
      {"SELECT * FROM users WHERE name = 'alice'", "SELECT * FROM users WHERE name = ?"},
      {"SELECT 'it''s'", "SELECT ?"},
      {"SELECT 'a\\'b', 'c'", "SELECT ?, ?"},
      {"SELECT 'a\\\\', 'b'", "SELECT ?, ?"},
      {"SELECT ''", "SELECT ?"},
      {"SELECT '', ''''", "SELECT ?, ?"},
      {"x='a'||'b'", "x=?||?"},
      {"SELECT E'tab\\there', N'unicode', e'x', n'y'", "SELECT ?, ?, ?, ?"},
      {"SELECT X'1F', B'0101', x'ab'", "SELECT ?, ?, ?"},
      {"SELECT 'multi\nline -- not a comment /* nor this */'", "SELECT ?"},
      {"SELECT name AS e FROM t WHERE e='x'", "SELECT name AS e FROM t WHERE e=?"},
      {"SELECT _utf8'abc'", "SELECT _utf8?"},
  });
}

TEST(RedactSql, DollarQuotedStringsAndPositionalParameters) {
  check_table({
      {"SELECT $$secret$$", "SELECT ?"},
      {"SELECT $tag$it's $$ inside$tag$, 1", "SELECT ?, ?"},
      {"SELECT $a$x$b$y$a$", "SELECT ?"},
      {"SELECT $$$$", "SELECT ?"},
      {"SELECT * FROM t WHERE id = $1 AND name = $2", "SELECT * FROM t WHERE id = $1 AND name = $2"},
      {"SELECT $12, $3 + 4", "SELECT $12, $3 + ?"},
      {"SELECT a$b, c$1 FROM t", "SELECT a$b, c$1 FROM t"},
      {"SELECT $ FROM t", "SELECT $ FROM t"},
  });
}

TEST(RedactSql, Numbers) {
  check_table({
      {"SELECT 42", "SELECT ?"},
      {"SELECT 3.14, .5, 1., 1e10, 1.5E-3, 2e+8, 0x1F, 0XfF, 0b101", "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"},
      {"LIMIT 10 OFFSET 20", "LIMIT ? OFFSET ?"},
      {"WHERE a > 1.5e3 AND b < 7", "WHERE a > ? AND b < ?"},
      {"SELECT 1e", "SELECT ?e"},     // not an exponent: the 'e' is a separate word
      {"SELECT 0x", "SELECT ?x"},     // not hex: no digit after 0x
      {"SELECT t.5", "SELECT t?"},    // '.5' is a number
      {"SELECT 1.2.3", "SELECT ??"},  // '1.2' then '.3'
  });
}

TEST(RedactSql, NegativeNumbersOnlyWhenTheMinusIsASign) {
  check_table({
      {"SELECT -5", "SELECT ?"},
      {"-5", "?"},
      {"WHERE a = -5", "WHERE a = ?"},
      {"WHERE a=-5", "WHERE a=?"},
      {"WHERE a < -1.5e3", "WHERE a < ?"},
      {"WHERE a = -.5", "WHERE a = ?"},
      {"VALUES (-1, -2)", "VALUES (?)"},
      {"f(-1, -2)", "f(?, ?)"},
      {"a[-1]", "a[?]"},
      {"WHERE a BETWEEN -10 AND -5", "WHERE a BETWEEN ? AND ?"},
      {"SELECT a - 1", "SELECT a - ?"},
      {"SELECT a-1", "SELECT a-?"},
      {"SELECT t1.c-1", "SELECT t1.c-?"},
      {"SELECT (a)-1", "SELECT (a)-?"},
      {"SELECT 2-1", "SELECT ?-?"},
      {"SELECT 2 - -1", "SELECT ? - ?"},
      {"SELECT $1-1", "SELECT $1-?"},
      {"SELECT \"x\"-1", "SELECT \"x\"-?"},
      {"SELECT - 1", "SELECT - ?"},  // a detached minus stays
      {"SELECT a*-2", "SELECT a*?"},
      {"SELECT a --1\n, b", "SELECT a , b"},  // '--' is a comment, not two minus signs
  });
}

TEST(RedactSql, DigitsInsideIdentifiersAreKept) {
  check_table({
      {"SELECT col2, t1.x FROM t1 JOIN t2 ON t1.id = t2.id",
       "SELECT col2, t1.x FROM t1 JOIN t2 ON t1.id = t2.id"},
      {"SELECT \"quoted1\", `backtick2`, \"a\"\"b2\", `c``3`",
       "SELECT \"quoted1\", `backtick2`, \"a\"\"b2\", `c``3`"},
      {"SELECT \"it's\" FROM \"t 1\"", "SELECT \"it's\" FROM \"t 1\""},
      {"SELECT _x9, x_9_", "SELECT _x9, x_9_"},
      {"SELECT \xC3\xA9t\xC3\xA9"
       "1 FROM t",
       "SELECT \xC3\xA9t\xC3\xA9"
       "1 FROM t"},
      {"SELECT sum(v1) FROM t WHERE v1 > 100", "SELECT sum(v1) FROM t WHERE v1 > ?"},
  });
}

TEST(RedactSql, InListsCollapse) {
  check_table({
      {"WHERE id IN (1, 2, 3)", "WHERE id IN (?)"},
      {"WHERE id IN (1,2,3)", "WHERE id IN (?)"},
      {"WHERE id in ( 'a' , 'b' )", "WHERE id in (?)"},
      {"WHERE id IN (1 /* one */, -2, 'x', ?)", "WHERE id IN (?)"},
      {"WHERE id NOT IN (1, 2)", "WHERE id NOT IN (?)"},
      {"WHERE id IN(1,2)", "WHERE id IN(?)"},
      {"WHERE id IN (?)", "WHERE id IN (?)"},
      {"WHERE id IN (?, ?, ?)", "WHERE id IN (?)"},
      {"WHERE id IN ($1, $2)", "WHERE id IN ($1, $2)"},
      {"WHERE id IN (SELECT id FROM t WHERE x = 1)", "WHERE id IN (SELECT id FROM t WHERE x = ?)"},
      {"WHERE id IN (1, f(2))", "WHERE id IN (?, f(?))"},
      {"WHERE id IN ()", "WHERE id IN ()"},
      {"WHERE a IN (1, 2) AND b IN ('x')", "WHERE a IN (?) AND b IN (?)"},
      {"WHERE (a, b) IN ((1, 2), (3, 4))", "WHERE (a, b) IN ((?, ?), (?, ?))"},
      {"WHERE within (1, 2)", "WHERE within (?, ?)"},
  });
}

TEST(RedactSql, ValuesTuplesCollapse) {
  check_table({
      {"INSERT INTO t (a, b) VALUES (1, 'x')", "INSERT INTO t (a, b) VALUES (?)"},
      {"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", "INSERT INTO t (a, b) VALUES (?)"},
      {"INSERT INTO t VALUES (1),(2) RETURNING id", "INSERT INTO t VALUES (?) RETURNING id"},
      {"INSERT INTO t VALUES (?, ?), (?, ?)", "INSERT INTO t VALUES (?)"},
      {"INSERT INTO t VALUES(1, 2), (3, 4);", "INSERT INTO t VALUES(?);"},
      {"INSERT INTO t VALUES (1, now()), (2, now())", "INSERT INTO t VALUES (?, now()), (?, now())"},
      {"INSERT INTO t VALUES (1, 2), (3, DEFAULT), (5, 6)", "INSERT INTO t VALUES (?), (?, DEFAULT), (?, ?)"},
      {"INSERT INTO t VALUES ($1, $2)", "INSERT INTO t VALUES ($1, $2)"},
      {"INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)",
       "INSERT INTO t VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)"},
      {"INSERT INTO t VALUES (1), x, (2)", "INSERT INTO t VALUES (?), x, (?)"},
  });
}

TEST(RedactSql, CommentsAndWhitespace) {
  check_table({
      {"SELECT 1 -- trailing comment", "SELECT ?"},
      {"SELECT a -- comment\nFROM t", "SELECT a FROM t"},
      {"SELECT /* inline */ a FROM t", "SELECT a FROM t"},
      {"SELECT a/**/FROM t", "SELECT a FROM t"},
      {"/* leading */ SELECT 1", "SELECT ?"},
      {"SELECT a /* x /* not nested */ FROM t", "SELECT a FROM t"},
      {"-/**/-1", "- ?"},  // the comment separates the two minus signs
      {"  SELECT \t a ,\n\n b \r\n FROM   t  ", "SELECT a , b FROM t"},
      {"SELECT\fa\vFROM t", "SELECT a FROM t"},
      {"", ""},
      {"   \n\t ", ""},
      {"-- only a comment", ""},
      {"SELECT '--not a comment', \"/*nor this*/\"", "SELECT ?, \"/*nor this*/\""},
  });
}

TEST(RedactSql, UnterminatedLiteralsHideTheRest) {
  check_table({
      {"SELECT 'secret", "SELECT ?"},
      {"SELECT 'secret\\'", "SELECT ?"},
      {"SELECT 'it''s", "SELECT ?"},
      {"SELECT E'secret", "SELECT ?"},
      {"SELECT $$secret", "SELECT ?"},
      {"SELECT $t$secret$t", "SELECT ?"},
      {"SELECT \"ident", "SELECT ?"},
      {"SELECT `ident", "SELECT ?"},
      {"SELECT a /* secret", "SELECT a ?"},
      {"SELECT a FROM t WHERE b = 'x' AND c = 'sec", "SELECT a FROM t WHERE b = ? AND c = ?"},
      {"'", "?"},
      {"\"", "?"},
      {"$$", "?"},
      {"/*", "?"},
  });
  for (const char* sql : {"SELECT 'secret", "SELECT $$secret", "SELECT a /* secret", "x = E'secret\\"}) {
    EXPECT_EQ(sg::redact_sql(sql).find("secret"), std::string::npos) << sql;
  }
}

TEST(RedactSql, PlaceholdersAndOperatorsAreKept) {
  check_table({
      {"SELECT * FROM t WHERE a = ? AND b = :name AND c = @v",
       "SELECT * FROM t WHERE a = ? AND b = :name AND c = @v"},
      {"SELECT a::int, b->>'k', c @> '{}'", "SELECT a::int, b->>?, c @> ?"},
      {"UPDATE t SET a = a + 1, b = 'x' WHERE id = 7", "UPDATE t SET a = a + ?, b = ? WHERE id = ?"},
      {"SELECT 1; SELECT -2", "SELECT ?; SELECT ?"},
      // SQLite's numbered parameters are placeholders, not `?` followed by a number.
      {"SELECT a FROM t WHERE id = ?1 AND b = ?12 AND c = 3",
       "SELECT a FROM t WHERE id = ?1 AND b = ?12 AND c = ?"},
      {"SELECT ?1-1, ? 2", "SELECT ?1-?, ? ?"},
      {"WHERE id IN (?1, ?2)", "WHERE id IN (?1, ?2)"},
  });
}

TEST(RedactSql, AppendsToExistingOutput) {
  std::string out = "q=";
  sg::redact_sql("  SELECT 1  ", out);
  EXPECT_EQ(out, "q=SELECT ?");
  // The list collapse must not reach into what was already there.
  out = "IN (";
  sg::redact_sql("1, 2)", out);
  EXPECT_EQ(out, "IN (?, ?)");
  out = "x";
  sg::redact_sql(" IN (1, 2)", out);
  EXPECT_EQ(out, "xIN (?)");
}

TEST(RedactSql, RandomInputIsBoundedAndIdempotent) {
  // Inputs built from SQL-ish fragments reach the corner cases faster than random bytes.
  const std::vector<std::string> pieces = {"SELECT", " ",   "'",  "''",     "\\",   "\"", "`",  "$",
                                           "$$",     "$a$", "1",  "-",      ".",    "e",  "0x", "(",
                                           ")",      ",",   "IN", "VALUES", "--",   "/*", "*/", "\n",
                                           "?",      "x",   "E",  "\xC3",   "\xA9", "=",  ";",  "+"};
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string sql;
    const int n = static_cast<int>(rng() % 24);
    for (int k = 0; k < n; ++k) sql += pieces[rng() % pieces.size()];
    const std::string once = sg::redact_sql(sql);
    ASSERT_LE(once.size(), sql.size()) << sql;
    ASSERT_EQ(sg::redact_sql(once), once) << "input: " << sql;
    ASSERT_TRUE(once.empty() || (once.front() != ' ' && once.back() != ' ')) << sql;
    if (sql.find_first_of("\"`") == std::string::npos) {  // quoted identifiers are kept verbatim
      ASSERT_EQ(once.find("  "), std::string::npos) << sql;
      ASSERT_EQ(once.find('\''), std::string::npos) << "a quote survived: " << sql;
    }
  }
}

}  // namespace
