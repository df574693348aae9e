// A plugin as an application would dlopen() it: it records with the header-only macros
// and must share the application's per-thread state and default collector, not carry
// copies of its own.
#include "plugin.hpp"

#include <memory>
#include <string_view>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace {
std::shared_ptr<spyglass::test::CollectingExporter> g_sink;
std::unique_ptr<spyglass::Session> g_session;
}  // namespace

void plugin_work() { SPYGLASS_SCOPE("plugin.work"); }

void plugin_current_context(spyglass::Context* out) { *out = spyglass::Context::current(); }

void plugin_session_begin() {
  // Not make_shared: its type tag is a GNU_UNIQUE symbol of libstdc++, and a library that
  // provides one can never be unloaded, which the unload test needs.
  g_sink.reset(new spyglass::test::CollectingExporter);
  g_session = std::make_unique<spyglass::Session>(spyglass::SessionOptions{},
                                                  std::vector<std::shared_ptr<spyglass::Exporter>>{g_sink});
}

std::size_t plugin_session_end() {
  g_session.reset();  // drains: every event recorded before this call has been exported
  std::size_t n = 0;
  for (const auto& e : g_sink->events())
    if (std::string_view(e.name) == "plugin.work") ++n;
  g_sink.reset();
  return n;
}
