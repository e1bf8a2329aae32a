"""The benchmarks behind `make bench` and `make bench-upload` (`python -m tests.bench`).
Tooling, not product: the production image leaves them out."""
