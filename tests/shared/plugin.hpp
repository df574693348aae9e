#pragma once
// What the test plugin exports: C functions a host finds with dlsym(), as it would find
// the entry points of any plugin. Names and signatures are shared by the plugin and the
// tests that load it.

#include <cstddef>

#include "spyglass/context.hpp"

#define SPYGLASS_TEST_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

/// Records one function span, "plugin.work", in the calling thread's current context.
SPYGLASS_TEST_PLUGIN_EXPORT void plugin_work();
/// The calling thread's current context, as code inside the plugin sees it.
SPYGLASS_TEST_PLUGIN_EXPORT void plugin_current_context(spyglass::Context* out);
/// For a host that does not link the core: opens a Session (owned by the plugin) with a
/// collecting exporter.
SPYGLASS_TEST_PLUGIN_EXPORT void plugin_session_begin();
/// Ends the Session opened by plugin_session_begin() and returns how many "plugin.work"
/// events its exporter received.
SPYGLASS_TEST_PLUGIN_EXPORT std::size_t plugin_session_end();

using PluginWorkFn = void (*)();
using PluginCurrentContextFn = void (*)(spyglass::Context*);
using PluginSessionBeginFn = void (*)();
using PluginSessionEndFn = std::size_t (*)();
