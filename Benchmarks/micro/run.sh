#!/usr/bin/env bash
# Route-matching microbenchmark (ordo-one/benchmark), release build in its own package.
# Prints the framework's table; compare "resolve x100, 10000 routes" with "… 10 routes".
set -euo pipefail
cd "$(dirname "$0")"
swift package --allow-writing-to-package-directory benchmark --target RouteMatching "$@"
