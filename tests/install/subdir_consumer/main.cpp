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
  std::printf("offered=%llu dispatched=%llu\n", static_cast<unsigned long long>(c.offered),
              static_cast<unsigned long long>(c.dispatched));
  return c.offered == 10 && c.dispatched == 10 ? 0 : 1;
}
