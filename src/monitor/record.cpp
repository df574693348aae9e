// JSON forms of RunRecord and Sample, shared by `spyglass run --json`, `history --json`
// and `show --json`.

#include "spyglass/monitor/record.hpp"

#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

void write_json(const RunRecord& r, std::string& out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("id"), w.value(r.id);
  w.key("label"), w.value(r.label);
  w.key("command"), w.value(r.command);
  w.key("args");
  w.begin_array();
  for (const auto& a : r.args) w.value(a);
  w.end_array();
  w.key("cwd"), w.value(r.cwd);
  w.key("host"), w.value(r.host);
  w.key("git_commit");
  if (r.git_commit.empty()) {
    w.null();
  } else {
    w.value(r.git_commit);
  }
  w.key("start_unix_ns"), w.value(r.start_unix_ns);
  w.key("end_unix_ns"), w.value(r.end_unix_ns);
  w.key("duration_ns"), w.value(r.duration_ns);
  w.key("exit_code"), w.value(r.exit_code);
  w.key("signal"), w.value(r.signal);
  w.key("kill_reason"), w.value(r.kill_reason);
  w.key("error"), w.value(r.error);
  w.key("user_cpu_ns"), w.value(r.user_cpu_ns);
  w.key("sys_cpu_ns"), w.value(r.sys_cpu_ns);
  w.key("max_rss_bytes"), w.value(r.max_rss_bytes);
  w.key("peak_tree_rss_bytes"), w.value(r.peak_tree_rss_bytes);
  w.key("read_bytes"), w.value(r.read_bytes);
  w.key("write_bytes"), w.value(r.write_bytes);
  w.key("rchar"), w.value(r.rchar);
  w.key("wchar"), w.value(r.wchar);
  w.key("peak_threads"), w.value(r.peak_threads);
  w.key("peak_processes"), w.value(r.peak_processes);
  w.key("vol_ctx"), w.value(r.vol_ctx);
  w.key("invol_ctx"), w.value(r.invol_ctx);
  w.key("minflt"), w.value(r.minflt);
  w.key("majflt"), w.value(r.majflt);
  w.key("monitor_cpu_ns"), w.value(r.monitor_cpu_ns);
  w.key("tree_source"), w.value(r.tree_source);
  w.key("tree_source_reason"), w.value(r.tree_source_reason);
  w.key("tree_peak_memory_bytes"), w.value(r.tree_peak_memory_bytes);
  w.key("peak_tree_pss_bytes"), w.value(r.peak_tree_pss_bytes);
  w.key("tree_user_cpu_ns"), w.value(r.tree_user_cpu_ns);
  w.key("tree_sys_cpu_ns"), w.value(r.tree_sys_cpu_ns);
  w.key("tree_read_bytes"), w.value(r.tree_read_bytes);
  w.key("tree_write_bytes"), w.value(r.tree_write_bytes);
  w.key("tree_peak_processes"), w.value(r.tree_peak_processes);
  w.key("max_rss_source"), w.value(r.max_rss_source);
  // The limits, null where there was none.
  const auto opt = [&w](const char* k, const auto& v) {
    w.key(k);
    if (v) {
      w.value(*v);
    } else {
      w.null();
    }
  };
  w.key("limits");
  w.begin_object();
  opt("timeout_ns", r.limits.timeout_ns);
  opt("max_rss_bytes", r.limits.max_rss_bytes);
  opt("max_cpu_seconds", r.limits.max_cpu_seconds);
  w.key("kill");
  if (r.limits.kill.empty()) {
    w.null();
  } else {
    w.value(r.limits.kill);
  }
  opt("grace_ns", r.limits.grace_ns);
  w.end_object();
  w.key("leftover_processes"), w.value(r.leftover_processes);
  w.key("leftovers_killed"), w.value(r.leftovers_killed);
  w.key("detections");
  w.begin_array();
  for (const RunDetection& d : r.detections) {
    w.begin_object();
    w.key("offset_ns"), w.value(d.offset_ns);
    w.key("metric"), w.value(d.metric);
    w.key("kind"), w.value(d.kind);
    w.key("value"), w.value(d.value);
    w.key("score"), w.value(d.score);  // null when infinite
    w.key("detector"), w.value(d.detector);
    w.end_object();
  }
  w.end_array();
  w.key("metrics");
  w.begin_object();
  for (const RunMetric& m : r.metrics) {
    w.key(m.name);
    w.begin_object();
    w.key("value"), w.value(m.value);
    w.key("unit"), w.value(m.unit);
    w.end_object();
  }
  w.end_object();
  w.key("stdout_tail"), w.value(r.stdout_tail);
  w.key("stderr_tail"), w.value(r.stderr_tail);
  w.end_object();
}

void write_json(const Sample& s, std::uint64_t t0_ns, std::string& out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("t_ns"), w.value(s.t_ns >= t0_ns ? s.t_ns - t0_ns : 0);
  w.key("processes"), w.value(s.processes);
  w.key("threads"), w.value(s.threads);
  w.key("fds"), w.value(s.fds);
  w.key("cpu_user_ns"), w.value(s.cpu_user_ns);
  w.key("cpu_sys_ns"), w.value(s.cpu_sys_ns);
  w.key("cpu_user_pct"), w.value(s.cpu_user_pct);
  w.key("cpu_sys_pct"), w.value(s.cpu_sys_pct);
  w.key("rss_bytes"), w.value(s.rss_bytes);
  w.key("vms_bytes"), w.value(s.vms_bytes);
  w.key("pss_bytes"), w.value(s.pss_bytes);
  w.key("uss_bytes"), w.value(s.uss_bytes);
  w.key("read_bytes"), w.value(s.read_bytes);
  w.key("write_bytes"), w.value(s.write_bytes);
  w.key("rchar"), w.value(s.rchar);
  w.key("wchar"), w.value(s.wchar);
  w.key("vol_ctx"), w.value(s.vol_ctx);
  w.key("invol_ctx"), w.value(s.invol_ctx);
  w.key("minflt"), w.value(s.minflt);
  w.key("majflt"), w.value(s.majflt);
  w.end_object();
}

}  // namespace SPYGLASS_NAMESPACE::monitor
