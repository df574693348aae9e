// An application traced into one Session together with a plugin it dlopen()s: the plugin's
// spans must continue the application's trace, because both use the one per-thread state
// and the one default collector of the core.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "plugin.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;

namespace {

// The plugin, opened as an application opens one: by path, its symbols kept local.
class Plugin {
 public:
  Plugin() : handle_(dlopen(SPYGLASS_TEST_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL)) {}
  ~Plugin() { close(); }
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  [[nodiscard]] bool loaded() const { return handle_ != nullptr; }
  template <typename Fn>
  Fn function(const char* name) const {
    return reinterpret_cast<Fn>(dlsym(handle_, name));
  }
  /// dlclose(); true when it succeeded.
  bool close() {
    if (handle_ == nullptr) return true;
    const bool ok = dlclose(handle_) == 0;
    handle_ = nullptr;
    return ok;
  }

 private:
  void* handle_;
};

const sg::Event* find(const std::vector<sg::Event>& events, std::string_view name) {
  for (const auto& e : events)
    if (name == e.name) return &e;
  return nullptr;
}

struct SharedPlugin : ::testing::Test {
  std::shared_ptr<CollectingExporter> sink = std::make_shared<CollectingExporter>();
  sg::Session session{sg::SessionOptions{}, std::vector<std::shared_ptr<sg::Exporter>>{sink}};
  Plugin plugin;

  void SetUp() override { ASSERT_TRUE(plugin.loaded()) << dlerror(); }
};

}  // namespace

TEST_F(SharedPlugin, PluginSpanIsChildOfTheApplicationsRequest) {
  const auto work = plugin.function<PluginWorkFn>("plugin_work");
  const auto current = plugin.function<PluginCurrentContextFn>("plugin_current_context");
  ASSERT_NE(work, nullptr);
  ASSERT_NE(current, nullptr);

  sg::Context app;
  sg::Context seen_by_plugin;
  {
    sg::RequestScope request("/plugin");
    app = sg::Context::current();
    ASSERT_TRUE(app.valid());
    current(&seen_by_plugin);
    work();
    // The plugin's scope restored the request as the current span.
    EXPECT_EQ(sg::Context::current().span_id, app.span_id);
  }
  EXPECT_FALSE(sg::Context::current().valid());

  EXPECT_EQ(seen_by_plugin.trace_id, app.trace_id);
  EXPECT_EQ(seen_by_plugin.span_id, app.span_id);
  EXPECT_EQ(seen_by_plugin.sampled, app.sampled);
  EXPECT_EQ(seen_by_plugin.excluded, app.excluded);

  ASSERT_TRUE(session.collector().flush());
  const auto events = sink->events();
  const sg::Event* request = find(events, "/plugin");
  const sg::Event* child = find(events, "plugin.work");
  ASSERT_NE(request, nullptr);
  ASSERT_NE(child, nullptr) << "the plugin's span did not reach the application's Session";
  EXPECT_EQ(request->span_id, app.span_id);
  EXPECT_EQ(child->trace_id, app.trace_id);
  EXPECT_EQ(child->parent_span_id, app.span_id);
  EXPECT_NE(child->span_id, app.span_id);
  EXPECT_EQ(child->thread_id, request->thread_id);
}

// The plugin is closed while a thread that recorded through it is still alive; that
// thread then exits, running the core's thread-exit code. The process must not crash.
TEST_F(SharedPlugin, ThreadThatRecordedThroughThePluginExitsAfterDlclose) {
  const auto work = plugin.function<PluginWorkFn>("plugin_work");
  ASSERT_NE(work, nullptr);

  std::mutex m;
  std::condition_variable cv;
  bool recorded = false;
  bool may_exit = false;
  std::thread worker([&] {
    work();
    std::unique_lock<std::mutex> lock(m);
    recorded = true;
    cv.notify_all();
    cv.wait(lock, [&] { return may_exit; });
  });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return recorded; });
  }
  // The event's name is a string literal of the plugin: read it before the plugin goes.
  ASSERT_TRUE(session.collector().flush());
  const auto events = sink->events();
  const sg::Event* child = find(events, "plugin.work");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->parent_span_id, 0u);

  ASSERT_TRUE(plugin.close()) << dlerror();
  {
    std::lock_guard<std::mutex> lock(m);
    may_exit = true;
  }
  cv.notify_all();
  worker.join();

  // The application keeps recording after the plugin and the thread are gone. (Only the
  // new events are read: the plugin's names went with it.)
  { SPYGLASS_SCOPE("after.dlclose"); }
  ASSERT_TRUE(session.collector().flush());
  const auto after = sink->events();
  ASSERT_EQ(after.size(), events.size() + 1);
  EXPECT_STREQ(after.back().name, "after.dlclose");
}
