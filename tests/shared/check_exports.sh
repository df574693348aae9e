#!/usr/bin/env bash
# Checks with nm/readelf that the core's state exists once in a process:
#   check_exports.sh <core> <plugin> [other spyglass shared objects...]
# <core> is libspyglass_core.so (shared build) or the executable that links the static
# core and exports it. It must export each piece of process-wide state exactly once;
# no other object may define any of it (the plugin must refer to it, undefined); no
# spyglass symbol may be exported by two objects; and the plugin, built from the public
# headers only, may define no spyglass variable: an inline variable or function-local
# static in a header would show up there as a second copy.
set -euo pipefail
# No `producer | grep -q`: grep -q exits at the first match, the producer then dies of
# SIGPIPE, and pipefail turns a found symbol into a failure. Matches read captured output.
core=$1 plugin=$2
shift 2
others=("$@")
fail=0
err() { echo "check_exports: $*" >&2; fail=1; }

state=(
  'spyglass::v0::detail::tl_state'
  'spyglass::v0::detail::g_default_collector'
  'spyglass::v0::detail::g_sample_threshold'
  'spyglass::v0::detail::g_record_unsampled'
  'spyglass::v0::clock::detail::tick_source'
)
# Dynamic symbols defined by a file, demangled: "<type> <name>".
defined_dyn() { nm -D -C --defined-only "$1" | awk '{t=$2; $1=""; $2=""; sub(/^  /, ""); print t " " $0}'; }

# A shared core is linked -z nodelete (see src/core/CMakeLists.txt). glibc would also pin
# it today because of libstdc++'s GNU_UNIQUE symbols in it, but that is an accident of
# which library templates the core uses; the flag is the guarantee.
case "$core" in
  *.so | *.so.*)
    grep -q 'FLAGS_1.*NODELETE' <<<"$(readelf -d "$core")" || err "$core is not linked with -z nodelete" ;;
esac

core_syms=$(defined_dyn "$core")
for s in "${state[@]}"; do
  n=$(grep -cxF -e "B $s" -e "D $s" -e "b $s" -e "d $s" <<<"$core_syms" || true)
  [ "$n" = 1 ] || err "$core exports $s $n times (want 1)"
  # Not defined anywhere else, not even as a local symbol.
  for f in "$plugin" "${others[@]}"; do
    if grep -q " ${s}\$" <<<"$(nm -C --defined-only "$f" 2>/dev/null)"; then err "$f defines its own $s"; fi
  done
done
grep -q " spyglass::v0::detail::tl_state\$" <<<"$(nm -D -C --undefined-only "$plugin")" ||
  err "$plugin does not take tl_state from the core"

# No spyglass symbol exported by two objects (the core's symbols belong to the core).
# Type information of classes without a key function is merged by the dynamic linker by
# design and left out.
dups=$(for f in "$core" "$plugin" "${others[@]}"; do
         nm -D --defined-only "$f" | awk '$3 ~ /spyglass/ && $3 !~ /^_ZT[ISV]/ {print $3}' | sort -u
       done | sort | uniq -d)
[ -z "$dups" ] || err "exported by more than one object: $(c++filt <<<"$dups" | tr '\n' ' ')"

# GNU_UNIQUE symbols are how GCC makes a default-visibility inline variable or local
# static one per process; none is expected (all state is defined out of line).
for f in "$core" "$plugin" "${others[@]}"; do
  if grep -q spyglass <<<"$(readelf -W --dyn-syms "$f" | awk '$5 == "UNIQUE"')"; then
    err "$f has GNU_UNIQUE spyglass symbols: $(readelf -W --dyn-syms "$f" | awk '$5 == "UNIQUE" {print $8}' | c++filt | tr '\n' ' ')"
  fi
done

# Writable or thread-local spyglass variables defined in the plugin (types b/B/d/D/u/V
# and TLS), other than the plugin's own test code and type information.
own=$(nm -C --defined-only "$plugin" | awk '$2 ~ /^[bBdDuvV]$/' | grep 'spyglass::' |
      grep -v -e 'vtable for' -e 'typeinfo' -e 'VTT for' -e '(anonymous namespace)::g_' || true)
[ -z "$own" ] || err "$plugin defines spyglass variables of its own (header state duplicated): $own"

[ "$fail" = 0 ] && echo "check_exports: ok ($core, $plugin${others:+, ${others[*]}})"
exit "$fail"
