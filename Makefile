# The two commands a newcomer needs:
#   make run    install what is missing, build, and serve on http://127.0.0.1:8000
#   make test   install what is missing, build, and run every test through CTest
JOBS ?= 2
BUILD ?= build
SAN_BUILD ?= build-asan

.PHONY: all build run test test-asan deps test-deps bench bench-render bench-protocols bench-footprint bench-scaleout bench-events clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build:
	@scripts/configure.sh $(BUILD)
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	@scripts/dev-cert.sh --for-config reel.yaml
	$(BUILD)/reeld --config reel.yaml

test: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (CI runs both).
test-asan: test-deps
	@scripts/configure.sh $(SAN_BUILD) --sanitize
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

bench: build
	bench/run.sh

bench-protocols: build  # reel over HTTP/1.1, TLS, h2, h2c, HTTP/3 against Hypercorn
	bench/protocols.sh

bench-footprint: build  # idle RSS per listener kind, against a Hypercorn worker
	bench/footprint.sh

bench-scaleout: build  # reel on PostgreSQL (api/worker roles) against FastAPI+SQLAlchemy and graphile-worker
	bench/scaleout.sh

bench-events: build  # SSE latency/memory per subscriber and webhook deliveries/s against FastAPI+Redis
	bench/events.sh

bench-render:  # builds build/reel-render itself (only that target)
	bench/render.sh

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
