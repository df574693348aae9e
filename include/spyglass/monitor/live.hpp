#pragma once
/// Live detection over the samples of a running process tree: CPU and memory spikes
/// (EwmaDetector and RollingMadDetector, past-only) and steady memory growth, a leak
/// (GrowthDetector). Part of spyglass::analytics; fed plain numbers, so it needs nothing
/// of the monitor.

#include <cstddef>
#include <vector>

#include "spyglass/monitor/detectors.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

/// One finding: an episode of one metric and detector, reported once, at its first
/// flagged point, with its strongest flagged point. A spike's episode lasts while the
/// metric stays above the level it rose from by half the minimum rise; a leak's while
/// the growth is flagged. `t`, `value` and `score` are those of the strongest point, so
/// that a report pairs a value with the time it was seen.
struct LiveFinding {
  double t = 0;               ///< seconds since the start, at the strongest point
  const char* metric = "";    ///< "cpu" (percent, 100 = one core) or "rss" (bytes)
  const char* kind = "";      ///< "spike" or "leak"
  const char* detector = "";  ///< "ewma", "rolling-mad" or "growth"
  double value = 0;           ///< the metric at the strongest point
  double score = 0;           ///< its score: z (ewma), modified z
                              ///< (rolling-mad), or the fitted growth in bytes per second (growth)
  double start = 0;           ///< seconds since the start, at the episode's first point
};

/// Feeds the detectors one sample at a time and keeps what they flag. Spikes count only
/// upwards and only when the rise is large in absolute terms too, so that a flat past
/// (a sleeping command's 0 % CPU) does not turn noise into findings. Not thread-safe.
class SPYGLASS_API LiveDetector {
 public:
  /// Parameters; the detectors' own thresholds and warm-ups are the library defaults.
  struct Options {
    bool spikes = true;                         ///< flag CPU and memory spikes
    bool leaks = true;                          ///< flag steady memory growth
    double warmup = 1.0;                        ///< seconds from the start during which nothing is flagged
    double cpu_min_rise = 25;                   ///< a CPU spike rises this many points above the level
    double rss_min_rise = 32.0 * 1024 * 1024;   ///< a memory spike rises this many bytes above the level
    double rss_min_ratio = 0.25;                ///< and this share of the level
    double leak_min_bytes = 8.0 * 1024 * 1024;  ///< a leak grows at least this much over its window
    EwmaDetector::Options ewma{};               ///< the EWMA spike detector's, for CPU and memory alike
    RollingMadDetector::Options mad{};          ///< the rolling-MAD spike detector's, likewise
    /// growth.window is the leak window in seconds; the fit takes a sample every
    /// window / 100 seconds (every sample when they are further apart), so a leak is
    /// seen at most 1 % of the window late and an update costs the same for any window.
    GrowthDetector::Options growth{};
    std::size_t max_findings = 1000;  ///< later episodes are counted in dropped() only
  };
  /// Throws AnalyticsError for options out of range.
  explicit LiveDetector(Options o);
  /// With the default options.
  LiveDetector() : LiveDetector(Options{}) {}

  /// Judges one sample against the samples before it, then learns it: `t` seconds since
  /// the start (a sample not later than the previous one is ignored), the tree's CPU in
  /// percent and its RSS in bytes. Returns how many findings began at this sample (they
  /// are the last ones of findings()). Non-finite values are ignored.
  std::size_t update(double t, double cpu_pct, double rss_bytes);
  /// The findings so far, in order of their first point.
  [[nodiscard]] const std::vector<LiveFinding>& findings() const noexcept { return findings_; }
  /// Episodes beyond Options::max_findings.
  [[nodiscard]] std::size_t dropped() const noexcept { return dropped_; }

 private:
  // An episode per metric and detector: the index of its finding while it lasts, -1
  // between episodes, kDroppedEpisode during one beyond max_findings.
  static constexpr std::ptrdiff_t kDroppedEpisode = -2;
  struct Slot {
    const char* metric;
    const char* kind;
    const char* detector;
    std::ptrdiff_t open = -1;
    double base = 0;  ///< a spike's level before it rose
  };
  // Opens, extends or ends the slot's episode; returns 1 when one began.
  std::size_t step(Slot& s, bool flagged, bool goes_on, double t, double value, double score);

  Options o_;
  EwmaDetector cpu_ewma_, rss_ewma_;
  RollingMadDetector cpu_mad_, rss_mad_;
  GrowthDetector growth_;
  Slot slots_[5] = {{"cpu", "spike", "ewma"},
                    {"cpu", "spike", "rolling-mad"},
                    {"rss", "spike", "ewma"},
                    {"rss", "spike", "rolling-mad"},
                    {"rss", "leak", "growth"}};
  static constexpr double kLeakPoints = 100;  ///< leak fit points per window, at most about
  double last_t_ = -1;
  double last_leak_t_ = 0;
  bool leak_fed_ = false;
  bool any_ = false;
  std::vector<LiveFinding> findings_;
  std::size_t dropped_ = 0;
};

}  // namespace SPYGLASS_NAMESPACE::analytics
