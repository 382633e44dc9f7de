# Conveniences; the README's commands are the scripts themselves.
.PHONY: demo test lint format bench sandbox

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

bench:
	.venv/bin/python benchmarks/bench_shangzhibo.py
	.venv/bin/python benchmarks/bench_nuoyun.py --rows 200000

sandbox:
	.venv/bin/python -m sandbox --port 8799 --config-out output/sandbox-config.json
