# Two commands set everything up on a fresh machine:
#   make demo   a practice fleet of 3 real test hosts on this machine's Docker, provisioned, URLs printed
#   make test   the unit tests and the integration tests on real test hosts
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv engine images demo demo-hub demo-down test unit lint clean bench

venv: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

engine:
	bash scripts/engine.sh

images: venv engine
	$(BIN)/python -m practice images

demo: images
	$(BIN)/python -m practice up --count 3 --label demo --dir .demo
	rm -rf .demo/.fleet   # new servers: forget the old ones' host keys and credentials
	$(BIN)/python -m practice inventory --label demo --dir .demo --image fleet-jupyter:test > .demo/lab.yml
	$(BIN)/fab provision --hosts .demo/lab.yml
	$(BIN)/fab handout --hosts .demo/lab.yml
	@echo "Practice fleet is up. Remove it with: make demo-down"

# mode: hub: 3 practice hosts, the swarm, JupyterHub behind HTTPS, 4 practice students
demo-hub: images
	$(BIN)/python -m practice hub-images
	$(BIN)/python -m practice up --count 3 --label demo-hub --dir .demo-hub
	rm -rf .demo-hub/.fleet
	$(BIN)/python -m practice inventory --hub --label demo-hub --dir .demo-hub > .demo-hub/lab.yml
	$(BIN)/fab provision --hosts .demo-hub/lab.yml
	$(BIN)/fab handout --hosts .demo-hub/lab.yml
	@echo "The class address is on every card above. Remove it with: make demo-down"
	@echo "fab handout --hosts .demo-hub/lab.yml"

demo-down: venv
	-[ ! -f .demo/lab.yml ] || $(BIN)/fab teardown --hosts .demo/lab.yml --yes
	-[ ! -f .demo-hub/lab.yml ] || $(BIN)/fab teardown --hosts .demo-hub/lab.yml --yes
	$(BIN)/python -m practice down --label demo
	$(BIN)/python -m practice down --label demo-hub

lint: venv
	$(BIN)/ruff check .

# fleet against Ansible and pyinfra on real test hosts (benchmarks/README.md); e.g.
#   make bench BENCH_ARGS="--scenario converged --hosts 1,8,20 --repeat 5"
bench: images
	$(BIN)/python -m benchmarks setup
	$(BIN)/python -m benchmarks run $(BENCH_ARGS)

unit: venv
	$(BIN)/python -m pytest -q tests/unit

test: images lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests   # two files at a time: the hosts mostly wait

clean: demo-down
	rm -rf $(VENV) build .demo .demo-hub
