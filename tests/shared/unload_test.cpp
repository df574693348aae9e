// A host that does not link the core loads it only as the dependency of a plugin. The
// shared core is linked with -z nodelete: dlclose() of the plugin must leave it mapped,
// so that threads that recorded through the plugin can still run its thread-exit code.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "plugin.hpp"

namespace {

bool is_loaded(const char* name) {
  void* h = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  dlclose(h);  // drops the reference RTLD_NOLOAD took
  return true;
}

struct PluginFunctions {
  PluginWorkFn work = nullptr;
  PluginSessionBeginFn session_begin = nullptr;
  PluginSessionEndFn session_end = nullptr;
};

PluginFunctions functions_of(void* plugin) {
  PluginFunctions f;
  f.work = reinterpret_cast<PluginWorkFn>(dlsym(plugin, "plugin_work"));
  f.session_begin = reinterpret_cast<PluginSessionBeginFn>(dlsym(plugin, "plugin_session_begin"));
  f.session_end = reinterpret_cast<PluginSessionEndFn>(dlsym(plugin, "plugin_session_end"));
  return f;
}

}  // namespace

// Every thread that recorded has exited before dlclose(): no thread-exit code of the core
// is pending, so only nodelete keeps the core loaded.
TEST(SharedCoreUnload, CoreStaysLoadedAfterThePluginThatBroughtItIsClosed) {
  ASSERT_FALSE(is_loaded(SPYGLASS_TEST_CORE_SONAME)) << "this test must not link the core";
  void* plugin = dlopen(SPYGLASS_TEST_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(plugin, nullptr) << dlerror();
  ASSERT_TRUE(is_loaded(SPYGLASS_TEST_CORE_SONAME));
  const PluginFunctions f = functions_of(plugin);
  ASSERT_NE(f.work, nullptr);
  ASSERT_NE(f.session_begin, nullptr);
  ASSERT_NE(f.session_end, nullptr);

  f.session_begin();
  std::thread worker([&] { f.work(); });
  worker.join();
  EXPECT_EQ(f.session_end(), 1u);

  ASSERT_EQ(dlclose(plugin), 0) << dlerror();
  EXPECT_FALSE(is_loaded(SPYGLASS_TEST_PLUGIN_PATH))
      << "the plugin was not unloaded: the test proves nothing";
  EXPECT_TRUE(is_loaded(SPYGLASS_TEST_CORE_SONAME)) << "the core was unloaded with the plugin";
}

// A thread that recorded through the plugin outlives it and exits after dlclose(): its
// exit runs the core's thread registry reaper, which must still be mapped.
TEST(SharedCoreUnload, ThreadExitsAfterThePluginIsClosed) {
  ASSERT_FALSE(is_loaded(SPYGLASS_TEST_CORE_SONAME)) << "this test must not link the core";
  void* plugin = dlopen(SPYGLASS_TEST_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(plugin, nullptr) << dlerror();
  const PluginFunctions f = functions_of(plugin);
  ASSERT_NE(f.work, nullptr);
  ASSERT_NE(f.session_begin, nullptr);
  ASSERT_NE(f.session_end, nullptr);

  std::mutex m;
  std::condition_variable cv;
  bool recorded = false;
  bool may_exit = false;
  f.session_begin();
  std::thread worker([&] {
    f.work();
    std::unique_lock<std::mutex> lock(m);
    recorded = true;
    cv.notify_all();
    cv.wait(lock, [&] { return may_exit; });
  });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return recorded; });
  }
  EXPECT_EQ(f.session_end(), 1u);
  ASSERT_EQ(dlclose(plugin), 0) << dlerror();
  EXPECT_FALSE(is_loaded(SPYGLASS_TEST_PLUGIN_PATH));
  {
    std::lock_guard<std::mutex> lock(m);
    may_exit = true;
  }
  cv.notify_all();
  worker.join();
  EXPECT_TRUE(is_loaded(SPYGLASS_TEST_CORE_SONAME));
}
