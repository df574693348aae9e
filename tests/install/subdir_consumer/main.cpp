// Records a few scopes through the default collector and checks they were counted.
#include <spyglass/spyglass.hpp>

#include <cstdio>

int main() {
  spyglass::Session session;
  for (int i = 0; i < 10; ++i) {
    SPYGLASS_SCOPE("consumer.work");
  }
  session.collector().flush();
  const auto c = session.collector().counters();
  std::printf("enqueued=%llu exported=%llu\n", static_cast<unsigned long long>(c.enqueued),
              static_cast<unsigned long long>(c.exported));
  return c.enqueued == 10 && c.exported == 10 ? 0 : 1;
}
