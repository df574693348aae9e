#pragma once
/// RAII scopes behind the macros, the macros themselves, and traced().
///
/// A scope opens a child span of the calling thread's current context (or a new trace),
/// makes it current, and at its end records one Event and restores the parent, also when
/// an exception leaves the scope (the event is then marked as an error). Scopes are not
/// copyable or movable and must end on the thread that opened them.

#include <exception>
#include <functional>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "spyglass/emitter.hpp"
#include "spyglass/intern.hpp"

namespace SPYGLASS_NAMESPACE {

namespace detail {
/// Wraps a name known to live as long as the process (a string literal or an interned
/// name), so the scope stores the pointer without interning.
struct StaticName {
  const char* value;
};

/// The part every scope kind shares.
class ScopeBase {
 public:
  ScopeBase(const ScopeBase&) = delete;
  ScopeBase& operator=(const ScopeBase&) = delete;

  /// Marks the operation as failed.
  void error() noexcept {
    if (active_) event().status = Status::error;
  }
  /// The span this scope opened (all zero when recording is off).
  [[nodiscard]] Context context() const noexcept { return active_ ? tl_state.context : Context{}; }

 protected:
  ScopeBase(EventKind kind, const char* name) noexcept {
    if (!active()) return;
    open(kind, name);
  }
  explicit ScopeBase(std::nullptr_t) noexcept {}

  /// `detail_name`: the database system or HTTP method (see Event::detail).
  void open(EventKind kind, const char* name, const char* detail_name = "") noexcept {
    active_ = true;
    saved_ = tl_state.context;
    write_event(event_storage_, open_span(tl_state.context), kind, name, detail_name, thread_id());
    uncaught_ = detail::uncaught_exceptions();
    start_ = clock::now();
  }

  /// The context made current again when the scope ends.
  void restore_on_close(const Context& ctx) noexcept { saved_ = ctx; }

  ~ScopeBase() {
    if (!active_) return;
    const std::uint64_t end = clock::now();
    if (detail::uncaught_exceptions() > uncaught_) event().status = Status::error;
    finish(event(), tl_state.context, start_, end);
    tl_state.context = saved_;
  }

  /// The event being recorded. Exists only once open() ran: check active_ first.
  Event& event() noexcept { return *std::launder(reinterpret_cast<Event*>(event_storage_)); }

  bool active_ = false;

 private:
  // Raw storage, written whole by open(): an inactive scope costs no initialisation, and
  // an active one writes each byte once (see write_event).
  alignas(Event) unsigned char event_storage_[sizeof(Event)];
  Context saved_;
  std::uint64_t start_ = 0;
  int uncaught_ = 0;
};
}  // namespace detail

/// A function (or any named block) scope. The name must be a string literal through
/// SPYGLASS_SCOPE; a runtime name is interned.
class Scope : public detail::ScopeBase {
 public:
  explicit Scope(detail::StaticName name, EventKind kind = EventKind::function) noexcept
      : ScopeBase(kind, name.value) {}
  explicit Scope(std::string_view name, EventKind kind = EventKind::function) noexcept : ScopeBase(nullptr) {
    if (detail::active()) open(kind, intern(name));
  }
};

/// A database query scope: the name is the redacted SQL.
class QueryScope : public detail::ScopeBase {
 public:
  /// `sql` is redacted and interned (cached per distinct statement); `system` names the
  /// database ("postgresql", "sqlite", ...; interned).
  explicit QueryScope(std::string_view sql, std::string_view system = {}) noexcept : ScopeBase(nullptr) {
    if (!detail::active()) return;
    open(EventKind::db, intern_sql(sql), system.empty() ? "" : intern(system));
  }
  /// Rows returned or affected.
  void rows(std::uint64_t n) noexcept {
    if (active_) event().rows = n;
  }
};

/// A served request scope. Starts a new trace, or continues the caller's when given a
/// valid W3C `traceparent` header (an invalid one starts a new trace).
class SPYGLASS_API RequestScope : public detail::ScopeBase {
 public:
  explicit RequestScope(std::string_view route, std::string_view traceparent = {},
                        std::string_view method = {}) noexcept;
  /// The HTTP status; >= 500 marks the request as an error.
  void status(std::uint16_t code) noexcept {
    if (!active_) return;
    event().http_status = code;
    if (code >= 500) event().status = Status::error;
  }
  void bytes_in(std::uint64_t n) noexcept {
    if (active_) event().bytes_in = n;
  }
  void bytes_out(std::uint64_t n) noexcept {
    if (active_) event().bytes_out = n;
  }
  /// The `traceparent` header to send downstream from inside this request (55 chars),
  /// or "" when recording is off.
  [[nodiscard]] std::string traceparent() const;
};

/// Returns a callable that records each call of `fn` as a function event named `name`
/// (interned once). An exception thrown by `fn` marks the event as an error and passes on.
template <typename F>
auto traced(std::string_view name, F&& fn) {
#if SPYGLASS_ENABLED
  const char* interned = intern(name);
  return [interned, f = std::forward<F>(fn)](auto&&... args) mutable -> decltype(auto) {
    Scope scope(detail::StaticName{interned});
    return std::invoke(f, std::forward<decltype(args)>(args)...);
  };
#else
  (void)name;
  return std::forward<F>(fn);
#endif
}

namespace detail {
/// Stand-ins that keep user code compiling when the macros are compiled out.
struct NoopQuery {
  void rows(std::uint64_t) noexcept {}
  void error() noexcept {}
};
struct NoopRequest {
  void status(std::uint16_t) noexcept {}
  void bytes_in(std::uint64_t) noexcept {}
  void bytes_out(std::uint64_t) noexcept {}
  void error() noexcept {}
  [[nodiscard]] std::string traceparent() const { return {}; }
};
}  // namespace detail

}  // namespace SPYGLASS_NAMESPACE

#if SPYGLASS_ENABLED
/// Records the enclosing block as a function event named `name` (a string literal).
#define SPYGLASS_SCOPE(name) \
  const ::spyglass::Scope SPYGLASS_UNIQUE(spyglass_scope_)(::spyglass::detail::StaticName{"" name ""})
/// Records the enclosing function, named by its signature.
#define SPYGLASS_FUNCTION()                                 \
  const ::spyglass::Scope SPYGLASS_UNIQUE(spyglass_scope_)( \
      ::spyglass::detail::StaticName{__PRETTY_FUNCTION__})
/// Declares `var`, a QueryScope for `sql`; call var.rows(n) / var.error().
#define SPYGLASS_QUERY(var, sql) ::spyglass::QueryScope var(sql)
/// Declares `var`, a RequestScope for `route`; call var.status(code), var.bytes_in(n), ...
#define SPYGLASS_REQUEST(var, route) ::spyglass::RequestScope var(route)
/// As SPYGLASS_REQUEST, continuing the trace of an incoming `traceparent` header.
#define SPYGLASS_REQUEST_FROM(var, route, traceparent) ::spyglass::RequestScope var(route, traceparent)
#else
#define SPYGLASS_SCOPE(name) static_cast<void>(0)
#define SPYGLASS_FUNCTION() static_cast<void>(0)
#define SPYGLASS_QUERY(var, sql) [[maybe_unused]] ::spyglass::detail::NoopQuery var
#define SPYGLASS_REQUEST(var, route) [[maybe_unused]] ::spyglass::detail::NoopRequest var
#define SPYGLASS_REQUEST_FROM(var, route, traceparent) [[maybe_unused]] ::spyglass::detail::NoopRequest var
#endif
