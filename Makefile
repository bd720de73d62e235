# The two commands of the README: `make test` and `make demo`. Each installs the Debian packages
# it needs first (apt-get; run as root or with sudo), then builds.

SHELL := /bin/bash
SWIFT ?= swift
DEB_PACKAGES := libopenblas-dev libfaiss-dev libopenmpi-dev openmpi-bin libturbojpeg0-dev libexif-dev libpng-dev libswscale-dev python3-pil python3-torchvision zlib1g-dev libfreetype-dev fonts-dejavu-core dataset-fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Benchmarks and the demo choose OpenBLAS's AVX-512 kernels deliberately when the CPU has them and
# the caller has not chosen: Debian's OpenBLAS 0.3.21 misdetects such CPUs as "Prescott" (SSE3).
# Tests and CI never set this: they run whatever the machine's environment gives.
FAST_BLAS := $(if $(OPENBLAS_CORETYPE),,$(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo OPENBLAS_CORETYPE=SkylakeX))

.PHONY: all deps build test example plugins mpi check-new-loss docs doc-coverage demo bench bench-quick bench-kinds bench-env bench-each bench-deps bench-foundation bench-losses bench-search bench-plots bench-mpi bench-images bench-dedup bench-resnet fuzz fuzz-asan libfuzz reliability report report-crossbatch report-class-weights report-pml-losses pictures clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(MAKE) --no-print-directory example
	$(MAKE) --no-print-directory plugins
	$(MAKE) --no-print-directory mpi

# The DocC documentation (catalog: Docs/MetricLearning.docc, a link to the umbrella module's),
# combined over every library module, offline; fails on any warning (a broken link, a missing symbol).
DOC_TARGETS := DMLKernels DMLCore DMLNetworks DMLTraining ContrastiveLosses TripletLosses CenterLosses ProxyLosses \
  ClassificationLosses DMLLosses DMLSamplers DMLEvaluation DMLData DMLPlot DMLTesting DMLRun DMLPlugins DMLIndex DMLDistributed MetricLearning
docs: deps
	set -o pipefail; $(SWIFT) package --disable-sandbox generate-documentation $(addprefix --target ,$(DOC_TARGETS)) --enable-inherited-docs \
	  --enable-experimental-combined-documentation 2>&1 | tee .build/docs.log
	@if grep -q "^warning:" .build/docs.log; then grep -A2 "^warning:" .build/docs.log; echo "docs: warnings above"; exit 1; fi
	@echo "docs: .build/plugins/Swift-DocC/outputs/ (combined archive), no warnings"
	$(MAKE) --no-print-directory doc-coverage

# Every public symbol of Sources/ has a doc comment (its own, or the documented protocol
# requirement's it implements); lists the undocumented ones and fails.
doc-coverage: deps
	set -o pipefail; $(SWIFT) package dump-symbol-graph --minimum-access-level public 2>&1 | tee .build/symbolgraph.log
	python3 .ci/doc_coverage.py "$$(grep -oE '/[^ ]*symbolgraph/?' .build/symbolgraph.log | tail -1)" .

# `swift package new-loss` in a fresh copy of this tree (build folders left out) writes a
# module that builds and passes its conformance tests, with one added manifest line and no other
# source edited (the registry is generated). The plugin exits 0 even without write permission, so
# the files are checked.
check-new-loss: deps
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; mkdir "$$tmp/pkg"; \
	tar -C "$(CURDIR)" --exclude='.build*' --exclude='.git' --exclude='.swiftpm' -cf - . | tar -C "$$tmp/pkg" -xf -; cd "$$tmp/pkg"; \
	cp Package.swift "$$tmp/Package.swift.before"; \
	$(SWIFT) package --allow-writing-to-package-directory new-loss Foo; \
	test -f Sources/FooLoss/FooLoss.swift && test -f Tests/FooLossTests/FooLossTests.swift || { echo "new-loss wrote nothing"; exit 1; }; \
	changes=$$(diff "$$tmp/Package.swift.before" Package.swift | grep -E '^[<>]' || true); echo "Package.swift: $$changes"; \
	[ "$$(printf '%s\n' "$$changes" | grep -c '^>')" = 1 ] && ! printf '%s\n' "$$changes" | grep -q '^<' || { echo "new-loss changed more than one manifest line"; exit 1; }; \
	[ -z "$$(diff -rq "$(CURDIR)/Sources" Sources | grep -v FooLoss)" ] || { echo "new-loss edited sources beyond Sources/FooLoss"; exit 1; }; \
	$(SWIFT) build --build-tests; $(SWIFT) test --skip-build --filter FooLossTests 2>&1 | tee "$$tmp/log"; \
	grep -q 'Test run with 2 tests in 1 suite passed' "$$tmp/log" && echo "check-new-loss: FooLoss scaffolded, built and passed its conformance tests"

# Data-parallel training under a real mpirun (Tests/MPI/mpi-tests.sh): the equivalence check on 2
# and 3 ranks, the deliberate mistakes that must fail it, an exact resume after a killed job, a
# killed and a hung rank, a refused resume on another rank count, ranks started with other flags.
mpi: deps
	$(SWIFT) build --product dml
	bash Tests/MPI/mpi-tests.sh

# Plugins (Examples/Plugins): the C loss built with one cc command, the Swift miner with its own
# package; each checked by `dml check-plugin` and trained for one epoch; then every bad plugin of
# the test fixtures is refused at load, by name. Outputs stay under .build.
PLUGIN_DIR := .build/plugins
PLUGIN_TRAIN := --train-classes 0-2 --test-classes 5-6 --epochs 1 --log-every 0
BAD_PLUGINS := NO_ENTRY_POINT WRONG_ABI_VERSION UNKNOWN_HYPERPARAMETER_TYPE BAD_DEFAULT NULL_COMPUTE DUPLICATE_NAME INIT_FAILS BUILTIN_NAME
plugins: deps
	$(SWIFT) build --product dml
	mkdir -p $(PLUGIN_DIR)
	cc -shared -fPIC -O2 -I Sources/DMLPluginABI/include Examples/Plugins/squared-hinge/squared_hinge.c -o $(PLUGIN_DIR)/squared_hinge.so
	cd Examples/Plugins/HardestTriplets && $(SWIFT) build
	.build/debug/dml check-plugin $(PLUGIN_DIR)/squared_hinge.so
	.build/debug/dml check-plugin Examples/Plugins/HardestTriplets/.build/debug/libHardestTriplets.so
	.build/debug/dml --plugin $(PLUGIN_DIR)/squared_hinge.so train --loss squared-hinge --miner none $(PLUGIN_TRAIN)
	.build/debug/dml --plugin Examples/Plugins/HardestTriplets/.build/debug/libHardestTriplets.so train --loss triplet --miner hardest-triplets $(PLUGIN_TRAIN)
	@set -e; for bad in $(BAD_PLUGINS); do \
	  cc -shared -fPIC -D$$bad -I Sources/DMLPluginABI/include Tests/DMLPluginsTests/Fixtures/bad.c -o $(PLUGIN_DIR)/bad-$$bad.so; \
	  if err=$$(.build/debug/dml --plugin $(PLUGIN_DIR)/bad-$$bad.so list 2>&1 >/dev/null); then echo "plugins: bad-$$bad.so was loaded"; exit 1; fi; \
	  echo "$$err" | grep -q "^Error: plugin bad-$$bad.so: " || { echo "plugins: bad-$$bad.so: unexpected error: $$err"; exit 1; }; \
	  echo "plugins: refused bad-$$bad.so: $${err#Error: }"; \
	done
	@echo "plugins: the C and the Swift example passed check-plugin and trained; every bad plugin was refused by name"

# The external example package (Examples/ResearchRecipe) depends on this one, passes the conformance
# suite with its own loss and miner, trains its own network, loss and miner through the run API
# (train-recipe: a run, then its resume), and through the library's command line, selected by flags.
example: deps
	cd Examples/ResearchRecipe && $(SWIFT) build --build-tests && $(SWIFT) test
	out=$$(mktemp); dir=$$(mktemp -d); trap 'rm -rf "$$out" "$$dir"' EXIT; \
	{ Examples/ResearchRecipe/.build/debug/train-recipe "$$dir/run" && Examples/ResearchRecipe/.build/debug/train-recipe "$$dir/run" --resume | tee "$$out" && \
	  grep -q '^epoch 2 ' "$$out" && ! grep -q '^epoch 1 ' "$$out"; } || { echo "example: train-recipe did not train and resume"; exit 1; }; \
	echo "example: train-recipe trained, then resumed at epoch 2"; \
	[ "$$(Examples/ResearchRecipe/.build/debug/dml-recipe list | grep -cE '^  (residual-mlp|binomial-deviance|hardest-pairs) ')" = 3 ] || { echo "example: dml-recipe list lacks a component"; exit 1; }; \
	Examples/ResearchRecipe/.build/debug/dml-recipe train --train-classes 0-2 --test-classes 5-6 \
	  --network residual-mlp:width=64,blocks=1 --loss binomial-deviance --miner hardest-pairs --epochs 1 --log json --log-every 0 > "$$out"; \
	status=$$?; cat "$$out"; [ $$status -eq 0 ] && grep -q '"event":"test"' "$$out" && echo "example: dml-recipe trained the residual-mlp network with the binomial-deviance loss and the hardest-pairs miner"

# numpy from PyPI: its bundled OpenBLAS detects this CPU by itself, the reference for GEMM speed.
bench-deps: deps
	@python3 -c "import numpy" 2>/dev/null || python3 -m pip install --quiet numpy

# The reference stack of the side-by-side comparison, in a virtual environment on Debian's
# Python: python3-torch and python3-faiss from Debian (the stack behind shared/BENCHMARKS.md),
# pytorch-metric-learning 2.9.0 and numpy from PyPI (numpy < 2: Debian's torch 1.13 is built against 1.x).
BENCH_DEB := python3-torch python3-faiss python3-venv
BENCH_VENV := .build-bench/venv
bench-env: deps
	@missing=""; \
	for p in $(BENCH_DEB); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(BENCH_VENV)/bin/python -c "import pytorch_metric_learning, torch, faiss, numpy" 2>/dev/null || { \
	  /usr/bin/python3 -m venv --system-site-packages $(BENCH_VENV) && \
	  $(BENCH_VENV)/bin/pip install --quiet "pytorch-metric-learning==2.9.0" "numpy<2"; }

BENCH_BUILD := $(SWIFT) build -c release --product dml-bench && $(SWIFT) build -c release --product dml
COMPARE := python3 Benchmarks/Scripts/compare.py --dml-bench .build/release/dml-bench --dml .build/release/dml --python $(BENCH_VENV)/bin/python

# Every kernel case and the fmnist-05 protocol beside PML/torch/numpy/faiss, interleaved in
# one run, on the default and on the best BLAS kernels; writes Docs/BENCHMARKS.md (about 40 minutes).
bench: bench-env
	$(BENCH_BUILD)
	$(COMPARE) --output Docs/BENCHMARKS.md

# One case of each kind, default kernels, one round, MLP + contrastive end to end (a few minutes).
BENCH_QUICK_OUTPUT ?= Docs/BENCHMARKS-quick.md
bench-quick: bench-env
	$(BENCH_BUILD)
	$(COMPARE) --quick --output $(BENCH_QUICK_OUTPUT)

# Some kinds of micro case only, beside the reference in the same run (no training):
# `make bench-kinds KINDS=loss,miner` writes Docs/BENCHMARKS-loss,miner.md (a few minutes).
KINDS ?= loss
bench-kinds: bench-env
	$(BENCH_BUILD)
	$(COMPARE) --kinds $(KINDS) --no-train --output Docs/BENCHMARKS-$(KINDS).md

bench-foundation: bench-deps
	$(SWIFT) build -c release --product dml-bench
	env $(FAST_BLAS) .build/release/dml-bench foundation

bench-losses: deps
	$(SWIFT) build -c release --product dml-bench
	env $(FAST_BLAS) .build/release/dml-bench losses

bench-search: deps
	$(SWIFT) build -c release --product dml-bench
	env $(FAST_BLAS) .build/release/dml-bench search --no-large

# t-SNE of 10,000 points of dimension 128 in under a minute.
bench-plots: bench-deps
	@python3 -c "import sklearn" 2>/dev/null || python3 -m pip install --quiet scikit-learn
	$(SWIFT) build -c release --product dml-bench
	env $(FAST_BLAS) .build/release/dml-bench plots

# Data-parallel scaling: 1 rank × 2 threads against 2 ranks × 1 thread at a fixed global batch,
# images/s and the share of step time in communication (Benchmarks/Scripts/bench_mpi.sh; writes
# runs/bench-mpi.md; a few minutes).
bench-mpi: deps
	$(SWIFT) build -c release --product dml
	bash Benchmarks/Scripts/bench_mpi.sh

# Near-duplicate photos: precision and recall of dml dedup on planted edited copies of generated
# scenes, raw pixels and a trained instance embedding (Benchmarks/Scripts/bench_dedup.sh; writes
# runs/bench-dedup.md).
bench-dedup: deps
	$(SWIFT) build -c release --product dml
	bash Benchmarks/Scripts/bench_dedup.sh

# ResNet-18 and -50 forward + backward beside torch 1.13, and fine-tuning throughput on a JPEG
# folder (Benchmarks/Scripts/bench_resnet.sh; writes runs/bench-resnet.md; run make bench-images
# first for the folder).
bench-resnet: deps
	$(SWIFT) build -c release --product dml-bench && $(SWIFT) build -c release --product dml
	env $(FAST_BLAS) bash Benchmarks/Scripts/bench_resnet.sh

# The image pipeline beside torchvision's ImageFolder + DataLoader (Debian's python3-torchvision),
# the input wait of training on a JPEG folder, and the pipeline's memory at 10,000 and 100,000
# images (Benchmarks/Scripts/bench_images.sh; writes runs/bench-images.md; generates its JPEGs
# into .build-bench once).
bench-images: deps
	@dpkg-query -W -f='$${Status}' python3-torchvision 2>/dev/null | grep -q "ok installed" || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-torchvision; }
	$(SWIFT) build -c release --product dml-bench && $(SWIFT) build -c release --product dml
	bash Benchmarks/Scripts/bench_images.sh

# The single-issue benchmarks above, against the reference figures of earlier issues.
bench-each: bench-foundation bench-losses bench-search bench-plots

# The open-set protocol fmnist-05: train on Fashion-MNIST classes 0-4 (3-4 held out for
# validation and early stopping on MAP@R), evaluate on the unseen classes 5-9, beside the
# untrained network and the raw pixels.
# The recipe that transfers best (Docs/Generalisation.md): LocalNet as a learned intensity curve
# (1×1 filters) smoothed by a 5×5 mix, starting as the raw pixels, trained with the supervised
# contrastive loss; it beats the raw pixels and its own start on the unseen classes by 0.03 MAP@R.
# The run's pictures go to Docs/pictures (README).
DEMO_FLAGS ?= --train-classes 0-4 --validation-classes 3-4 --test-classes 5-9 --patience 2 \
  --network local:kernel=1,mix=5,init=identity,shift=0.81 --loss supcon:temperature=0.05 \
  --optimizer adam:lr=0.001 --batch shuffled:size=128 --epochs 4 --log text

# The demo writes its pictures under runs/demo (ignored): a run never edits the repository.
demo: deps
	$(SWIFT) build -c release --product dml
	env $(FAST_BLAS) .build/release/dml train $(DEMO_FLAGS) --plots runs/demo/pictures

# Refreshes the README's pictures (Docs/pictures) from the demo's recipe, on purpose.
pictures: deps
	$(SWIFT) build -c release --product dml
	env $(FAST_BLAS) .build/release/dml train $(DEMO_FLAGS) --plots Docs/pictures
	# The colour retrieval grid of the README's image section (a tinted Fashion-MNIST JPEG folder).
	set -e; tmp=$$(mktemp -d .build/pictures-shop.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	.build/release/dml export-images --classes 0-9 --per-class 300 --tint --size 48 --output "$$tmp/shop"; \
	env $(FAST_BLAS) .build/release/dml train --data "folder:$$tmp/shop" --image-size 48 --train-classes 0-4 --test-classes 5-9 \
	  --network convnet-s --loss contrastive --miner pair-margin --epochs 3 --log-every 0 --plots "$$tmp/plots"; \
	cp "$$tmp/plots/retrieval.png" Docs/pictures/retrieval-colour.png

# 100,000 mutated inputs for each loader and parser (IDX, CSV, NPY, safetensors, the
# search index, the hyperparameter syntax); any crash, hang or runaway allocation stops it.
fuzz: deps
	$(SWIFT) build -c release --product dml-fuzz
	.build/release/dml-fuzz 100000 1

# The same fuzzers under address sanitizer, in their own build tree (about 4 minutes to build).
fuzz-asan: deps
	$(SWIFT) build -c release --sanitize=address --product dml-fuzz --scratch-path .build-asan
	set -o pipefail; { printf '# Fuzzing under address sanitizer\n\nWritten by `make fuzz-asan` (seed 4): the fuzzer built with `--sanitize=address` (release),\n`ASAN_OPTIONS=detect_leaks=0:max_allocation_size_mb=4096`, 100,000 executions per target.\n```\n'; \
	  ASAN_OPTIONS=detect_leaks=0:max_allocation_size_mb=4096 .build-asan/release/dml-fuzz 100000 4 /dev/shm/dml-fuzz-asan 2>&1; \
	  printf '```\n'; } | tee Docs/RELIABILITY-asan.md

# The loaders under libFuzzer (coverage-guided) with address sanitizer: the toolchain's
# libFuzzer driver is linked by hand, as SwiftPM has no fuzzer product type.
LIBFUZZER := $(firstword $(wildcard /opt/swift/usr/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a) $(wildcard $(dir $(shell command -v swift))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a))
libfuzz: deps
	$(SWIFT) build -c release --product dml-libfuzzer --scratch-path .build-libfuzzer \
	  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
	  -Xlinker -u -Xlinker LLVMFuzzerRunDriver -Xlinker --export-dynamic -Xlinker $(LIBFUZZER) -Xlinker -lstdc++
	Benchmarks/Scripts/libfuzz.sh

# Kill -9 and resume 25 times, fuzz every loader, check peak memory; writes Docs/RELIABILITY.md.
reliability: deps
	$(SWIFT) build -c release --product dml
	$(SWIFT) build -c release --product dml-fuzz
	$(SWIFT) build -c release --product dml-bench
	Benchmarks/Scripts/reliability.sh

# The fmnist-05 generalisation table (Docs/Generalisation.md). Long: about an hour on 2 cores.
report: deps
	$(SWIFT) build -c release --product dml
	python3 Benchmarks/Scripts/fmnist05_report.py .build/release/dml Docs/fmnist05-table.md --tune
	python3 Benchmarks/Scripts/fmnist05_report.py .build/release/dml Docs/fmnist05-table.md

# ArcFace, CosFace and normalized softmax on fmnist-05 (MLP, 5 epochs, seeds 0-2), dml against PML
# 2.9.0 with the same recipe, interleaved; writes Docs/class-weights.md (about 20 minutes).
report-class-weights: bench-env
	$(SWIFT) build -c release --product dml
	env $(FAST_BLAS) python3 Benchmarks/Scripts/class_weights_report.py .build/release/dml $(BENCH_VENV)/bin/python Docs/class-weights.md

# The rest of PML's losses on fmnist-05 (MLP, PML's plain recipe, seed 0), dml against PML, one loss
# after the other in one run. Long: about an hour on 2 cores. Rows are cached in the .runs.json.
report-pml-losses: bench-env
	$(SWIFT) build -c release --product dml
	env $(FAST_BLAS) python3 Benchmarks/Scripts/pml_losses_report.py .build/release/dml $(BENCH_VENV)/bin/python Docs/pml-losses.md

SEEDS ?= 0,1
# Offline hard mining and cross-batch memory, with and without, on fmnist-05 (MLP).
report-crossbatch: deps
	$(SWIFT) build -c release --product dml
	python3 Benchmarks/Scripts/crossbatch_report.py .build/release/dml Docs/crossbatch.md --seeds $(SEEDS)

clean:
	rm -rf Examples/ResearchRecipe/.build
	rm -rf .build
