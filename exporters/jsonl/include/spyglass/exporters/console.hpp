#pragma once
/// Console exporter: one readable line per event, for development and debugging.

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"

namespace SPYGLASS_NAMESPACE {

/// When the console exporter uses ANSI colours.
enum class ColorMode : std::uint8_t {
  automatic,  ///< Only when the stream is a terminal (isatty) and NO_COLOR is unset or empty.
  always,     ///< Always, e.g. when piping into `less -R`.
  never,      ///< Never.
};

/// Settings of a ConsoleExporter.
struct ConsoleOptions {
  /// Where lines go; not owned, must stay open while the exporter is used.
  std::FILE* stream = stderr;
  ColorMode color = ColorMode::automatic;
};

/// Writes each event as one line:
///
///   2026-11-22T05:06:47.123456Z request  GET /users/{id} 12.35ms ok http=200 in=12B out=3.4kB
///   trace=4bf92f35 span=00f067aa parent=-
///
/// (one line in reality): UTC start time with microseconds, kind, name (with the method or
/// database system in front when set), duration in human units, status, per-kind values,
/// and the first 8 hex digits of the trace, span and parent span ids. Control characters,
/// quotes and backslashes in names are escaped as in JSON and invalid UTF-8 is replaced,
/// so an event cannot inject terminal escape sequences.
///
/// Thread-safety: all calls come from the collector's exporter thread. Each batch is
/// written with one fwrite() and flushed, so lines of other writers to the same stream are
/// not interleaved within a line on a stdio stream with its own lock.
class SPYGLASS_API ConsoleExporter final : public Exporter {
 public:
  /// Decides colouring once, from `options.color` and the stream.
  explicit ConsoleExporter(ConsoleOptions options = {});

  /// Writes the batch; false when the stream reports an error, which is also reported
  /// through spyglass::log (source "console").
  bool export_batch(std::span<const Event> events) override;
  /// fflush()es the stream.
  void flush() override;
  void shutdown() override { flush(); }
  [[nodiscard]] std::string_view name() const override { return "console"; }

  /// Whether lines carry ANSI colour escapes.
  [[nodiscard]] bool colored() const noexcept { return color_; }

  /// Appends the line of `event` (with '\n') as export_batch() writes it. Thread-safe.
  static void format(const Event& event, bool color, std::string& out);

 private:
  std::FILE* stream_;
  bool color_;
  std::string buf_;
};

}  // namespace SPYGLASS_NAMESPACE
