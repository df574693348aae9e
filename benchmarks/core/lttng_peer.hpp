// LTTng-UST as a peer: starts a session daemon when it can, loads the tracepoint
// provider, and runs recording sessions whose discarded events it reads back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lttng_peer {

/// True once a session daemon runs and the provider is loaded and registered with it.
/// The first call sets this up (prints why when it cannot); later calls are free.
/// SPYGLASS_BENCH_NO_LTTNG=1 turns the peer off.
bool available();

/// Why available() is false ("" when it is true).
const std::string& unavailable_reason();

/// One recording session: a user-space channel of 8 sub-buffers of 4 MiB per CPU in
/// discard mode with every spyglass_peer event enabled, writing to tmpfs (the cheapest
/// place LTTng's consumer can write to). Started by the constructor; stop() ends it.
class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// True when the session started.
  [[nodiscard]] bool ok() const { return ok_; }
  /// Events discarded so far by the channel (LTTng's own count, from `lttng list`).
  [[nodiscard]] std::optional<std::uint64_t> discarded() const;
  /// Stops tracing (waits until the consumer has the data) and returns the final
  /// discarded count.
  std::optional<std::uint64_t> stop();

 private:
  std::string name_;
  std::string dir_;
  bool ok_ = false;
  bool stopped_ = false;
};

/// CPU time (ns) used so far by the lttng-consumerd processes, which move LTTng's
/// buffers to the trace files (LTTng's counterpart of the collector and stage threads).
std::uint64_t consumerd_cpu_ns();

}  // namespace lttng_peer
