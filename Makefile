# Brothaman-Go: on-demand Podman containers through systemd socket activation.
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
LIBEXECDIR  ?= $(PREFIX)/libexec
HOOKSDIR    ?= /usr/share/containers/oci/hooks.d
# systemd reads generators from /usr/local/lib/systemd/*-generators too.
SYSTEMGENERATORDIR ?= $(PREFIX)/lib/systemd/system-generators
USERGENERATORDIR   ?= $(PREFIX)/lib/systemd/user-generators

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/brothaman/brothaman-go/internal/version.Version=$(VERSION)
GOBUILD := $(GO) build -trimpath -ldflags '$(LDFLAGS)'
OUT     := bin

# One hooks.d file per stage: schema 1.0.0 passes the same args to every
# stage of a file, and the hook takes its stage from its arguments.
HOOKSTAGES := prestart poststop

.PHONY: all build install uninstall test bats lint check rig clean demo demo-clean bench

all: build

build:
	@mkdir -p $(OUT)
	$(GOBUILD) -o $(OUT)/ ./cmd/...
	CGO_ENABLED=0 $(GOBUILD) -o $(OUT)/bro-testserver ./test/testserver
	CGO_ENABLED=0 $(GOBUILD) -o $(OUT)/broload ./test/broload

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/brothaman $(DESTDIR)$(HOOKSDIR) \
		$(DESTDIR)$(SYSTEMGENERATORDIR) $(DESTDIR)$(USERGENERATORDIR)
	# temp name + rename: a running system never finds a binary missing
	for b in bro-proxy bro-activate; do \
		install -m 0755 $(OUT)/$$b $(DESTDIR)$(BINDIR)/.$$b.new && \
		mv -f $(DESTDIR)$(BINDIR)/.$$b.new $(DESTDIR)$(BINDIR)/$$b || exit 1; \
	done
	ln -sf bro-activate $(DESTDIR)$(BINDIR)/bro-activate-direct
	install -m 0755 $(OUT)/bro-hook $(DESTDIR)$(LIBEXECDIR)/brothaman/.bro-hook.new
	mv -f $(DESTDIR)$(LIBEXECDIR)/brothaman/.bro-hook.new $(DESTDIR)$(LIBEXECDIR)/brothaman/bro-hook
	for stage in $(HOOKSTAGES); do \
		sed -e 's|@HOOK@|$(LIBEXECDIR)/brothaman/bro-hook|' -e "s|@STAGE@|$$stage|" \
			hooks.d/50-bro-activate.json.in > $(DESTDIR)$(HOOKSDIR)/.50-bro-activate-$$stage.json.tmp && \
		chmod 0644 $(DESTDIR)$(HOOKSDIR)/.50-bro-activate-$$stage.json.tmp && \
		mv $(DESTDIR)$(HOOKSDIR)/.50-bro-activate-$$stage.json.tmp $(DESTDIR)$(HOOKSDIR)/50-bro-activate-$$stage.json || exit 1; \
	done
	ln -sf $(BINDIR)/bro-activate $(DESTDIR)$(SYSTEMGENERATORDIR)/bro-generator
	ln -sf $(BINDIR)/bro-activate $(DESTDIR)$(USERGENERATORDIR)/bro-generator

# The hook config goes first: a hooks.d JSON whose path is missing stops
# Podman from creating any container at all.
uninstall:
	for stage in $(HOOKSTAGES); do rm -f $(DESTDIR)$(HOOKSDIR)/50-bro-activate-$$stage.json; done
	rm -f $(DESTDIR)$(SYSTEMGENERATORDIR)/bro-generator $(DESTDIR)$(USERGENERATORDIR)/bro-generator
	rm -f $(DESTDIR)$(BINDIR)/bro-proxy $(DESTDIR)$(BINDIR)/bro-activate $(DESTDIR)$(BINDIR)/bro-activate-direct
	rm -f $(DESTDIR)$(LIBEXECDIR)/brothaman/bro-hook
	-rmdir $(DESTDIR)$(LIBEXECDIR)/brothaman

test:
	$(GO) test -race -count=1 ./...

bats: build
	bats --print-output-on-failure test/bats

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(MAKE) staticcheck

# Everything CI runs, from a fresh machine: the rig (idempotent), the
# installed project, static checks, Go tests, every bats suite. As root.
check: rig install lint test fuzz bats

rig:
	bash test/rig/rig-up.sh

# The main job, for real: PostgreSQL socket-activated through bro-proxy.
demo:
	bash test/demo/demo.sh

demo-clean:
	bash test/demo/clean.sh

clean:
	rm -rf $(OUT)

# Every Go fuzz target for FUZZTIME each (default 20s); a crasher fails the
# run and stays in the package's testdata/fuzz as a regression test.
.PHONY: fuzz
fuzz:
	FUZZTIME=$(or $(FUZZTIME),20s) GO=$(GO) bash test/fuzz.sh

# staticcheck from the Go module proxy, pinned: v0.8.2 builds with Go 1.26.
# `go run pkg@version` needs no go.mod change and caches the build.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
.PHONY: staticcheck
staticcheck:
	$(STATICCHECK) ./...

# Benchmarks (test/bench, docs/bench.md): as root, each bounded to 10 minutes.
.PHONY: bench-coldstart
bench:
	test/bench/run.sh bench

bench-coldstart:
	test/bench/run.sh coldstart

# Issue 7's soak: 5 minutes of connection churn, RSS and fds sampled (as root).
.PHONY: soak
soak:
	test/bench/soak.sh $(or $(SOAK_SECONDS),300)
