# Entry points over the CMake presets. Each target installs missing Debian packages first.
#   make demo   build and run the main job (the quickstart, under the monitor when built)
#   make test   build and run every test: warnings-as-errors build, shared libraries, ASan+UBSan,
#               TSan, format, fuzz
#   make bench  build the benchmarks in Release and run them
.PHONY: deps demo test test-ci test-shared test-asan test-tsan format format-check fuzz bench clean

JOBS ?= 2
export CCACHE_DIR ?= $(HOME)/.cache/ccache
# The tests share a precompiled header; ccache caches builds that use one only with these.
export CCACHE_SLOPPINESS ?= pch_defines,time_macros,include_file_mtime,include_file_ctime

deps:
	@./scripts/install-deps.sh

demo: deps
	cmake --preset default >/dev/null
	cmake --build --preset default -j$(JOBS)
	./scripts/demo.sh build/default

test: deps format-check test-ci test-shared test-asan test-tsan fuzz
	@echo "make test: all stages passed"

test-ci:
	cmake --preset ci >/dev/null
	cmake --build --preset ci -j$(JOBS)
	ctest --preset ci

# BUILD_SHARED_LIBS=ON: the core and exporter tests, the plugin test and the installed
# shared package, against libspyglass_*.so (the test preset filters by label).
test-shared:
	cmake --preset shared >/dev/null
	cmake --build --preset shared -j$(JOBS)
	ctest --preset shared

test-asan:
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j$(JOBS)
	ctest --preset asan

test-tsan:
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j$(JOBS)
	ctest --preset tsan

format:
	git ls-files '*.hpp' '*.cpp' '*.h' '*.cc' | xargs clang-format -i

format-check:
	./scripts/format-check.sh

fuzz:
	fuzz/run.sh $${FUZZ_SECONDS:-15}

bench: deps
	cmake --preset bench >/dev/null
	cmake --build --preset bench -j$(JOBS)
	./scripts/bench.sh build/bench

clean:
	rm -rf build spyglass-out
