# The two commands a new machine needs: `make up` and `make test`.
# Both install what is missing first: the virtual environment with the pinned
# Python packages (pyproject.toml's dependency group `all`; pip >= 25.1 reads
# groups) and the JVM jars (conf/pom.xml, via Maven);
# `make test` also the Debian packages the tests drive (DEBIAN_TEST below), and
# `make stats` the fonts its charts draw names with (DEBIAN_FONTS).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MVN ?= mvn
DEPS_STAMP := $(VENV)/.deps-installed
JARS_STAMP := var/jars/.resolved
# Debian packages, each checked by a file it installs (package:file).
# The report's charts draw user names in any script, emoji included (pipelines/report.py CHART_FONTS)
DEBIAN_FONTS := fonts-noto-cjk:/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
	fonts-symbola:/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf
# the load tool `make bench` drives: wrk (bench/api_load.py)
DEBIAN_BENCH := wrk:/usr/bin/wrk
# tests/ui/test_browser.py drives Chromium through chromedriver; the cluster test puts HAProxy in front
# of two API hosts (stack/balancer.py); tests/bench/test_flood.py and test_run.py drive wrk
DEBIAN_TEST := chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver nodejs:/usr/bin/node npm:/usr/bin/npm \
	haproxy:/usr/sbin/haproxy $(DEBIAN_FONTS) $(DEBIAN_BENCH)
# axe-core (package.json): the accessibility checker tests/ui/test_browser.py injects into the page
AXE := node_modules/axe-core/axe.min.js
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export SPARK_CONF_DIR := $(CURDIR)/conf
# Spark's driver and web UI listen on loopback only
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help up test lint stats maintain sql demo-data bench deps jars debian fonts check-tools clean

help:
	@echo "make up      install what is missing, start Kafka, the Spark relay, the API and the UI"
	@echo "make test    install what is missing, lint, run the whole test suite"
	@echo "make lint    ruff check and ruff format --check (make test runs it first)"
	@echo "make stats   build Delta user_stats with spark-submit, print a summary, write var/reports/user_stats.html"
	@echo "make maintain  compact (OPTIMIZE), VACUUM and checkpoint the Delta tables now (ARGS=--no-vacuum: compact only; on S3 only with the streams stopped)"
	@echo "make sql     a Spark SQL shell with the tables as chat.<table>; make sql Q=\"SELECT ...\" runs one query"
	@echo "make demo-data N=5000   send realistic chat traffic (and some malformed records) to the running chat"
	@echo "make bench   the benchmark suite on a broker and stack of its own: bench/results/latest.json"
	@echo "make deps    only the Python virtual environment ($(VENV))"
	@echo "make jars    only the JVM jars (var/jars) from Maven Central"
	@echo "make debian  only the Debian packages the tests need (apt-get): Chromium, chromedriver, HAProxy, fonts, wrk"
	@echo "make clean   remove var/ (broker data, checkpoints, warehouse, jars), $(VENV) and node_modules/"

up: deps jars
	@$(PY) -m stack.up

test: deps jars debian $(AXE) lint
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: deps
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@echo "lint   ruff check and format: clean"

stats: deps jars fonts
	@. $(VENV)/bin/activate && spark-submit --properties-file conf/spark-defaults.conf pipelines/user_stats.py $(ARGS)

maintain: deps jars
	@$(PY) -m pipelines.maintenance $(ARGS)

sql: deps jars
	@$(PY) -m pipelines.sql $(if $(Q),-e "$$Q") $(ARGS)

demo-data: deps
	@$(PY) -m stack.demo_data $(if $(N),-n $(N)) $(ARGS)

bench: deps jars debian
	$(call apt,$(DEBIAN_BENCH))
	@$(PY) -m bench.run $(ARGS)

deps: $(DEPS_STAMP)

$(DEPS_STAMP): pyproject.toml | check-tools
	@echo "setup  creating the virtual environment and installing the pinned Python packages ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	@$(PY) -m pip install --quiet --disable-pip-version-check --group all
	@touch $@
	@echo "setup  Python packages ready"

jars: $(JARS_STAMP)

$(JARS_STAMP): conf/pom.xml | check-tools
	@echo "setup  resolving the Kafka broker, Spark's Kafka connector, Delta, S3A and S3Proxy jars with Maven (once) ..."
	@rm -rf var/jars
	@$(MVN) -q -B -f conf/pom.xml -Dmaven.repo.local=$(CURDIR)/var/m2 -Pkafka package
	@$(MVN) -q -B -f conf/pom.xml -Dmaven.repo.local=$(CURDIR)/var/m2 -Pspark package
	@$(MVN) -q -B -f conf/pom.xml -Dmaven.repo.local=$(CURDIR)/var/m2 -Ps3 package
	@$(MVN) -q -B -f conf/pom.xml -Dmaven.repo.local=$(CURDIR)/var/m2 -Ps3proxy package
	@touch $@
	@echo "setup  jars ready in var/jars ($$(ls var/jars/kafka | wc -l) for Kafka, $$(ls var/jars/spark | wc -l) for Spark, $$(ls var/jars/s3 | wc -l) for S3A, $$(ls var/jars/s3proxy | wc -l) for S3Proxy)"

# Installs the missing ones with apt-get as root, else through `sudo -n`; otherwise says what to run.
# $(call apt,package:file ...)
define apt
@missing=""; for entry in $(1); do test -e "$${entry#*:}" || missing="$$missing $${entry%%:*}"; done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ]; then as_root=; \
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
  else echo "Debian packages needed:$$missing; run  sudo apt-get install$$missing"; exit 1; fi; \
  echo "setup  installing Debian's$$missing with apt-get (once) ..."; \
  $$as_root apt-get update -qq && \
  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
    || { echo "installing$$missing failed"; exit 1; }; \
  echo "setup  Debian packages ready:$$missing"; \
fi
endef

debian:
	$(call apt,$(DEBIAN_TEST))

$(AXE): package.json package-lock.json | debian
	@echo "setup  installing axe-core with npm ci (once) ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# the charts fall back to matplotlib's own font without them: not a reason to stop `make stats`
fonts:
	-$(call apt,$(DEBIAN_FONTS))

check-tools:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0])'
	@java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])' || { echo "JDK 17+ is needed (java -version)"; exit 1; }
	@command -v $(MVN) >/dev/null || { echo "Maven is needed (mvn)"; exit 1; }

clean:
	rm -rf var $(VENV) node_modules
