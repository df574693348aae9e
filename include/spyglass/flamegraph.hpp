#pragma once
/// A flame graph as a self-contained SVG, from folded stacks. Lives in the core so that
/// every page that shows one (the command's output, reports, the in-app page) draws the
/// same picture without another dependency.

#include <cstdint>
#include <map>
#include <string>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// How render_flame_graph() draws.
struct FlameGraphOptions {
  std::string title = "Flame graph";  ///< shown on top
  std::string unit = "ns";            ///< what the values count, shown in each frame's tooltip
  unsigned width = 1200;              ///< image width in px
  unsigned frame_height = 17;         ///< px per stack level
  /// Frames narrower than this fraction of the whole are left out (their time still
  /// counts in their parents), which bounds the file size for huge inputs.
  double min_fraction = 1e-4;
};

/// An SVG flame graph of folded `stacks` ("root;child;leaf" to the leaf's self value):
/// the root at the bottom, each frame as wide as its total (self plus descendants),
/// siblings sorted by name. Click a frame to zoom into it, click "Reset zoom" (or the
/// bottom frame) to go back; a tooltip gives each frame's total and share. Self-contained
/// (inline script and style, no network), valid XML, names escaped and invalid UTF-8
/// repaired. Stacks are split at `;`.
SPYGLASS_API std::string render_flame_graph(const std::map<std::string, std::uint64_t>& stacks,
                                            const FlameGraphOptions& options = {});

}  // namespace SPYGLASS_NAMESPACE
