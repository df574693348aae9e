#pragma once
// Decodes OTLP protobuf bodies with `protoc --decode` and the official opentelemetry-proto
// definitions (fetched into the build tree at configure time), then parses protoc's text
// output into a tree. Nothing of the exporter's own code is involved. Shared by the OTLP
// fuzzer and the OTLP tests, which include it from here.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef SPYGLASS_PROTOC
#error "SPYGLASS_PROTOC must name protoc"
#endif
#ifndef SPYGLASS_OTLP_PROTO_DIR
#error "SPYGLASS_OTLP_PROTO_DIR must name the opentelemetry-proto include directory"
#endif

namespace spyglass_test {

/// One field of protoc's text output: a scalar (`value`, unescaped) or a message.
struct PNode {
  std::string name;
  std::string value;
  std::vector<PNode> children;

  /// The first child called `n`; throws when there is none.
  [[nodiscard]] const PNode& at(const std::string& n) const {
    for (const PNode& c : children) {
      if (c.name == n) return c;
    }
    throw std::out_of_range("no field " + n + " in " + name);
  }
  [[nodiscard]] bool has(const std::string& n) const {
    for (const PNode& c : children) {
      if (c.name == n) return true;
    }
    return false;
  }
  [[nodiscard]] std::vector<const PNode*> all(const std::string& n) const {
    std::vector<const PNode*> v;
    for (const PNode& c : children) {
      if (c.name == n) v.push_back(&c);
    }
    return v;
  }
};

/// Bytes of a text-format string literal's contents (C escapes, octal as protoc writes).
inline std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char c = s[++i];
    if (c >= '0' && c <= '7') {
      int v = 0;
      int n = 0;
      while (n < 3 && i < s.size() && s[i] >= '0' && s[i] <= '7') {
        v = v * 8 + (s[i] - '0');
        ++i;
        ++n;
      }
      --i;
      out.push_back(static_cast<char>(v));
    } else if (c == 'x') {
      int v = 0;
      int n = 0;
      while (n < 2 && i + 1 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1]))) {
        v = v * 16 + std::stoi(std::string(1, s[++i]), nullptr, 16);
        ++n;
      }
      out.push_back(static_cast<char>(v));
    } else {
      switch (c) {
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        default: out.push_back(c);  // \" \' \\ ?
      }
    }
  }
  return out;
}

/// Parses protoc's text format.
inline PNode parse_text(const std::string& text) {
  PNode root;
  root.name = "<root>";
  std::vector<PNode*> stack{&root};
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t b = line.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    line = line.substr(b);
    if (line == "}") {
      if (stack.size() < 2) throw std::runtime_error("unbalanced }");
      stack.pop_back();
      continue;
    }
    if (line.size() > 2 && line.substr(line.size() - 2) == " {") {
      PNode n;
      n.name = line.substr(0, line.size() - 2);
      stack.back()->children.push_back(std::move(n));
      stack.push_back(&stack.back()->children.back());
      continue;
    }
    const auto colon = line.find(": ");
    if (colon == std::string::npos) throw std::runtime_error("unexpected line: " + line);
    PNode n;
    n.name = line.substr(0, colon);
    std::string v = line.substr(colon + 2);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = unescape(v.substr(1, v.size() - 2));
    n.value = v;
    stack.back()->children.push_back(std::move(n));
  }
  if (stack.size() != 1) throw std::runtime_error("unbalanced {");
  return root;
}

/// Result of running protoc over a body.
struct Decoded {
  int exit_code = -1;
  std::string text;    ///< stdout
  std::string errors;  ///< stderr
  PNode tree;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// `protoc --decode=<type>` over `body`; `proto` is the file defining the type, relative
/// to the proto directory. Throws when protoc or the definitions are missing.
inline Decoded protoc_decode(const std::string& type, const std::string& proto, const std::string& body) {
  const std::string dir = SPYGLASS_OTLP_PROTO_DIR;
  if (std::ifstream(dir + "/" + proto).fail()) {
    throw std::runtime_error("official OTLP .proto files missing under " + dir +
                             " (the configure step fetches them with npm; re-run cmake)");
  }
  char tmpl[] = "/tmp/spyglass-otlp-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
  const std::string tmp = tmpl;
  {
    std::ofstream f(tmp + "/in.bin", std::ios::binary);
    f.write(body.data(), static_cast<std::streamsize>(body.size()));
  }
  const std::string cmd = std::string(SPYGLASS_PROTOC) + " --decode=" + type + " -I '" + dir + "' '" + dir +
                          "/" + proto + "' < '" + tmp + "/in.bin' > '" + tmp + "/out.txt' 2> '" + tmp +
                          "/err.txt'";
  const int rc = std::system(cmd.c_str());
  Decoded d;
  d.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  d.text = slurp(tmp + "/out.txt");
  d.errors = slurp(tmp + "/err.txt");
  std::remove((tmp + "/in.bin").c_str());
  std::remove((tmp + "/out.txt").c_str());
  std::remove((tmp + "/err.txt").c_str());
  ::rmdir(tmp.c_str());
  if (d.exit_code == 0) d.tree = parse_text(d.text);
  return d;
}

inline Decoded decode_traces(const std::string& body) {
  return protoc_decode("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                       "opentelemetry/proto/collector/trace/v1/trace_service.proto", body);
}
inline Decoded decode_metrics(const std::string& body) {
  return protoc_decode("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
                       "opentelemetry/proto/collector/metrics/v1/metrics_service.proto", body);
}

/// Lowercase hex of raw bytes.
inline std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

}  // namespace spyglass_test
