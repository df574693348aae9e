#pragma once
// The pages of `spyglass serve` and `spyglass report`: HTML with inline CSS and SVG charts
// drawn here, so that they need no script library and no network. Every chart point is an
// element carrying its run id (or time) and value in data attributes, and every mark
// (anomaly, change point, regression, baseline band, live detection) one element too.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "analyze.hpp"
#include "spyglass/monitor/history.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// What the pages read and how they analyse it.
struct PageOptions {
  /// The anomaly method, latest runs and baseline size, as `analyze --label` takes them.
  HistoryAnalyzeOptions analysis;
  std::size_t runs = 1000;       ///< newest runs of a label a label page reads and charts
  std::size_t index_runs = 100;  ///< newest runs of each label the index's trend covers
  std::size_t alerts = 500;      ///< newest alerts the alert page lists
};

/// A page and its HTTP status.
struct Page {
  int status = 200;
  std::string body;  ///< always HTML, error pages included
};

/// Answers GET `path` with its decoded query `params`: "/" (every label), "/label?name=L",
/// "/run?id=N", "/alerts". An unknown path, label or run gets 404; a missing or malformed
/// parameter 400. Throws HistoryError when the history cannot be read.
Page serve_page(monitor::History& h, std::string_view path, const std::map<std::string, std::string>& params,
                const PageOptions& o);

/// The static report of `label`: its charts and the summary of its runs in one
/// self-contained file (no script, no link out), with `flame_svg` (a flame graph, may be
/// empty) at its end. nullopt when the label has no runs.
std::optional<std::string> report_page(monitor::History& h, const std::string& label, const PageOptions& o,
                                       const std::string& flame_svg = {});

}  // namespace SPYGLASS_NAMESPACE::cli
