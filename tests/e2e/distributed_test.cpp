// examples/distributed end to end: the client process calls the server process on
// loopback, the server queries SQLite and a PostgreSQL server of the test's own, and both
// send OTLP to a loopback receiver. The JSONL files are read by Python's json module and
// the OTLP bodies decoded by protoc with the official OTLP definitions; what they hold
// must be one trace: client span -> the server's request span -> its two queries.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "../../fuzz/otlp/protoc_decode.hpp"
#include "../support/otlp_receiver.hpp"
#include "../support/postgres_server.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace {

// One span as a consumer of the outputs sees it.
struct Span {
  std::string process;  // "client" or "server"
  std::string kind, name, trace_id, span_id, parent, status, db_system, method, http_status, server;
  auto key() const { return std::tie(process, trace_id, span_id, parent, name); }
  bool operator<(const Span& o) const { return key() < o.key(); }
  bool operator==(const Span& o) const { return key() == o.key(); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The test's environment without what would change where the programs send their data:
// OTEL_* and SPYGLASS_* settings, and proxies (loopback is reached directly).
std::vector<std::string> clean_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    std::string name = var.substr(0, var.find('='));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.rfind("otel_", 0) == 0 || name.rfind("spyglass_", 0) == 0) continue;
    if (name.size() >= 6 && name.compare(name.size() - 6, 6, "_proxy") == 0) continue;
    env.push_back(var);
  }
  return env;
}

// Starts `argv` with stdout to `stdout_fd` and stderr to the file `stderr_path`.
pid_t spawn(std::vector<std::string> argv, int stdout_fd, const fs::path& stderr_path) {
  std::vector<std::string> env = clean_environment();
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << argv[0];
  return rc == 0 ? pid : -1;
}

// Waits for `pid` to end; its exit code, or -1 when it did not exit normally.
int wait_exit(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Each JSONL line in the directories of `processes` under `dir`, read by Python's json module. A line that
// is not complete JSON, or not ended by a newline, fails the script.
std::vector<Span> read_jsonl(const fs::path& dir, const std::vector<std::string>& processes) {
  static const char* const script = R"(
import glob, json, os, sys
for d in sys.argv[1:]:
    files = sorted(glob.glob(os.path.join(d, '*.jsonl')))
    if not files:
        sys.exit('no JSONL file in ' + d)
    for f in files:
        with open(f, encoding='utf-8') as fh:
            for n, line in enumerate(fh, 1):
                if not line.endswith('\n'):
                    sys.exit('%s:%d: no newline at the end of the line' % (f, n))
                e = json.loads(line)
                print('\t'.join([os.path.basename(d), e['kind'], e['name'], e['trace_id'], e['span_id'],
                                 e.get('parent_span_id', ''), e['status'], e.get('db_system', ''),
                                 e.get('method', ''), str(e.get('http_status', '')), e.get('server', '')]))
)";
  const fs::path out = dir / "jsonl.tsv";
  std::string cmd = "/usr/bin/python3 -c \"$SPYGLASS_SCRIPT\"";
  for (const std::string& p : processes) cmd += " '" + (dir / p).string() + "'";
  cmd += " > '" + out.string() + "' 2>&1";
  ::setenv("SPYGLASS_SCRIPT", script, 1);
  const int rc = std::system(cmd.c_str());
  ::unsetenv("SPYGLASS_SCRIPT");
  const std::string text = slurp(out);
  EXPECT_EQ(rc, 0) << text;
  std::vector<Span> spans;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
    f.resize(11);
    spans.push_back({f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]});
  }
  return spans;
}

// The spans of every OTLP traces request, decoded by protoc; the process is told by the
// resource's service.name.
std::vector<Span> read_otlp(const std::vector<spyglass_test::Request>& requests) {
  std::vector<Span> spans;
  for (const auto& r : requests) {
    const auto d = spyglass_test::decode_traces(r.payload());
    EXPECT_EQ(d.exit_code, 0) << d.errors;
    if (d.exit_code != 0) continue;
    for (const auto* rs : d.tree.all("resource_spans")) {
      std::string service;
      for (const auto* a : rs->at("resource").all("attributes"))
        if (a->at("key").value == "service.name") service = a->at("value").at("string_value").value;
      const std::string process = service == "distributed-client"   ? "client"
                                  : service == "distributed-server" ? "server"
                                                                    : "service " + service;
      for (const auto* ss : rs->all("scope_spans"))
        for (const auto* s : ss->all("spans")) {
          Span x;
          x.process = process;
          // OTLP names a server or client span "GET <route>" and a query by its
          // operation; the recorded name is in http.route, url.template and db.query.text.
          x.name = s->at("name").value;
          x.kind = s->at("kind").value;  // SPAN_KIND_...
          for (const auto* a : s->all("attributes")) {
            const std::string& key = a->at("key").value;
            const auto& value = a->at("value");
            if (key == "http.route" || key == "url.template" || key == "db.query.text")
              x.name = value.at("string_value").value;
            if (key == "http.request.method") x.method = value.at("string_value").value;
            if (key == "http.response.status_code") x.http_status = value.at("int_value").value;
            if (key == "url.full") x.server = value.at("string_value").value;
          }
          x.trace_id = spyglass_test::hex(s->at("trace_id").value);
          x.span_id = spyglass_test::hex(s->at("span_id").value);
          if (s->has("parent_span_id")) x.parent = spyglass_test::hex(s->at("parent_span_id").value);
          spans.push_back(x);
        }
    }
  }
  return spans;
}

std::string describe(const std::set<Span>& spans) {
  std::string out;
  for (const Span& s : spans)
    out += s.process + " " + s.trace_id + " " + s.span_id + " <- " + s.parent + " " + s.name + "\n";
  return out;
}

}  // namespace

TEST(DistributedExample, OneTraceFromTheClientThroughTheServerToBothDatabases) {
  spyglass::test::PostgresServer postgres;
  spyglass_test::Receiver otlp;
  char tmpl[] = "/tmp/spyglass-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;

  // The server, on a port of its choosing: its stdout is a pipe, read up to the line
  // that says where it listens.
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t server = spawn({SPYGLASS_DISTRIBUTED_SERVER, "--postgres", postgres.conninfo(), "--listen",
                              "127.0.0.1:0", "--out", (dir / "server").string(), "--otlp", otlp.url()},
                             out[1], dir / "server.err");
  ::close(out[1]);
  ASSERT_GT(server, 0);
  FILE* server_out = ::fdopen(out[0], "r");
  std::string url;
  char* line = nullptr;
  std::size_t cap = 0;
  while (url.empty() && ::getline(&line, &cap, server_out) > 0) {
    const std::string l = line;
    if (l.rfind("listening on ", 0) == 0) url = l.substr(13, l.find_last_not_of("\r\n") - 12);
  }
  if (url.empty()) {
    ::kill(server, SIGKILL);
    wait_exit(server);
    FAIL() << "the server ended before listening: " << slurp(dir / "server.err");
  }

  // The client runs to its end: three requests, each answered.
  const int client_out = ::open((dir / "client.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t client = spawn({SPYGLASS_DISTRIBUTED_CLIENT, "--url", url, "--requests", "3", "--out",
                              (dir / "client").string(), "--otlp", otlp.url()},
                             client_out, dir / "client.err");
  ::close(client_out);
  const int client_rc = wait_exit(client);

  // The server writes out what it holds when told to stop, then exits.
  ::kill(server, SIGTERM);
  std::string server_rest;
  while (::getline(&line, &cap, server_out) > 0) server_rest += line;
  std::free(line);
  std::fclose(server_out);
  const int server_rc = wait_exit(server);
  const std::string client_text = slurp(dir / "client.out");
  ASSERT_EQ(client_rc, 0) << client_text << slurp(dir / "client.err");
  ASSERT_EQ(server_rc, 0) << server_rest << slurp(dir / "server.err");
  // The server answered with the user and the tracestate the client sent.
  EXPECT_NE(client_text.find(R"("name":"bob","orders":1)"), std::string::npos) << client_text;
  EXPECT_NE(client_text.find(R"("tracestate":"example=distributed")"), std::string::npos) << client_text;

  const std::vector<Span> jsonl = read_jsonl(dir, {"client", "server"});
  // Client: the root, and one client span per request under it.
  std::vector<Span> roots, calls, requests, queries;
  for (const Span& s : jsonl) {
    if (s.process == "client" && s.kind == "function") roots.push_back(s);
    if (s.process == "client" && s.kind == "client") calls.push_back(s);
    if (s.process == "server" && s.kind == "request") requests.push_back(s);
    if (s.process == "server" && s.kind == "db") queries.push_back(s);
  }
  ASSERT_EQ(jsonl.size(), 1u + 3u + 3u + 6u);
  ASSERT_EQ(roots.size(), 1u);
  ASSERT_EQ(calls.size(), 3u);
  ASSERT_EQ(requests.size(), 3u);
  ASSERT_EQ(queries.size(), 6u);
  const Span& root = roots[0];
  EXPECT_EQ(root.name, "fetch_users");
  EXPECT_EQ(root.parent, "");
  // One trace id in both processes' files.
  std::set<std::string> trace_ids;
  for (const Span& s : jsonl) trace_ids.insert(s.trace_id);
  ASSERT_EQ(trace_ids.size(), 1u);
  EXPECT_EQ(trace_ids.count(root.trace_id), 1u);

  std::map<std::string, const Span*> call_by_id;
  for (const Span& c : calls) {
    EXPECT_EQ(c.name, "/users/{id}");
    EXPECT_EQ(c.method, "GET");
    EXPECT_EQ(c.http_status, "200");
    EXPECT_EQ(c.server, url);  // the server's origin, as it printed where it listens
    EXPECT_EQ(c.parent, root.span_id);
    EXPECT_EQ(c.status, "ok");
    call_by_id[c.span_id] = &c;
  }
  // Each request span is the child of a distinct client span.
  std::set<std::string> request_ids, call_parents;
  for (const Span& r : requests) {
    EXPECT_EQ(r.name, R"(/users/(\d+))");
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.http_status, "200");
    EXPECT_EQ(call_by_id.count(r.parent), 1u) << "request " << r.span_id << " has parent " << r.parent;
    call_parents.insert(r.parent);
    request_ids.insert(r.span_id);
  }
  EXPECT_EQ(call_parents.size(), 3u);
  // Each request has one SQLite and one PostgreSQL query as children.
  std::map<std::string, std::multiset<std::string>> systems_by_request;
  for (const Span& q : queries) {
    EXPECT_EQ(q.name, q.db_system == "sqlite"
                          ? "SELECT name FROM users WHERE id = ?1"
                          : "SELECT count(*), coalesce(sum(total), ?) FROM orders WHERE user_id = $1");
    EXPECT_EQ(request_ids.count(q.parent), 1u) << q.name << " has parent " << q.parent;
    EXPECT_EQ(q.status, "ok") << q.name;
    systems_by_request[q.parent].insert(q.db_system);
  }
  ASSERT_EQ(systems_by_request.size(), 3u);
  for (const auto& [request, systems] : systems_by_request)
    EXPECT_EQ(systems, (std::multiset<std::string>{"postgresql", "sqlite"})) << request;

  // OTLP: the same spans, with the same ids and parents, from the service they came from.
  const auto bodies = otlp.requests("/v1/traces");
  ASSERT_FALSE(bodies.empty());
  std::vector<Span> from_otlp = read_otlp(bodies);
  std::set<Span> expected(jsonl.begin(), jsonl.end()), got(from_otlp.begin(), from_otlp.end());
  EXPECT_EQ(from_otlp.size(), jsonl.size());
  EXPECT_TRUE(expected == got) << "JSONL:\n" << describe(expected) << "OTLP:\n" << describe(got);
  for (const Span& s : from_otlp) EXPECT_EQ(s.trace_id, root.trace_id) << s.process << " " << s.name;
  // The client's calls are CLIENT spans with the HTTP client attributes; the server's
  // requests SERVER spans.
  std::size_t client_spans = 0;
  for (const Span& s : from_otlp) {
    if (s.process == "client" && s.name == "/users/{id}") {
      ++client_spans;
      EXPECT_EQ(s.kind, "SPAN_KIND_CLIENT");
      EXPECT_EQ(s.method, "GET");
      EXPECT_EQ(s.http_status, "200");
      EXPECT_EQ(s.server, url + "/users/{id}");
    }
    if (s.process == "server" && s.name == R"(/users/(\d+))") {
      EXPECT_EQ(s.kind, "SPAN_KIND_SERVER");
    }
  }
  EXPECT_EQ(client_spans, 3u);

  fs::remove_all(dir);
}

TEST(DistributedExample, BadInputIsAClearError) {
  char tmpl[] = "/tmp/spyglass-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  // Runs a program to its end: its exit code, and what it wrote to stderr.
  const auto run = [&](std::vector<std::string> argv) {
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    const pid_t pid = spawn(std::move(argv), null, dir / "err");
    ::close(null);
    const int rc = wait_exit(pid);
    return std::make_pair(rc, slurp(dir / "err"));
  };
  // A port nothing listens on: bound, then closed.
  const std::uint16_t closed = [] {
    spyglass_test::Receiver r;
    return r.port();
  }();
  const std::string nowhere = "127.0.0.1:" + std::to_string(closed);

  auto [rc, err] = run({SPYGLASS_DISTRIBUTED_SERVER, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--postgres is required"), std::string::npos) << err;
  std::tie(rc, err) = run({SPYGLASS_DISTRIBUTED_SERVER, "--postgres", "host=x", "--listen", "no-port"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--listen wants HOST:PORT, not no-port"), std::string::npos) << err;
  std::tie(rc, err) = run({SPYGLASS_DISTRIBUTED_CLIENT, "--url", "http://" + nowhere, "--requests", "many"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--requests wants 1 to 1000, not many"), std::string::npos) << err;
  std::tie(rc, err) = run({SPYGLASS_DISTRIBUTED_CLIENT, "--url"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("no value after --url"), std::string::npos) << err;

  // A database that is not there: the server says so and does not start.
  std::tie(rc, err) =
      run({SPYGLASS_DISTRIBUTED_SERVER, "--postgres", "host=127.0.0.1 port=" + std::to_string(closed),
           "--listen", "127.0.0.1:0", "--out", (dir / "server").string()});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("PostgreSQL: connection to server at \"127.0.0.1\""), std::string::npos) << err;
  // A server that is not there: each request fails, and is recorded as a failed client span.
  std::tie(rc, err) = run({SPYGLASS_DISTRIBUTED_CLIENT, "--url", "http://" + nowhere, "--requests", "2",
                           "--out", (dir / "client").string()});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("2 request(s) failed"), std::string::npos) << err;
  std::size_t failed_calls = 0;
  for (const Span& s : read_jsonl(dir, {"client"}))
    if (s.process == "client" && s.kind == "client" && s.status == "error") {
      ++failed_calls;
      EXPECT_EQ(s.server, "http://" + nowhere);
      EXPECT_EQ(s.http_status, "0");
    }
  EXPECT_EQ(failed_calls, 2u);
  fs::remove_all(dir);
}
