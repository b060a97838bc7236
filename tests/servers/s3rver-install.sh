#!/usr/bin/env bash
# Install the S3-compatible test server (npm s3rver, version pinned by
# package-lock.json) into tests/servers/.s3rver/node_modules. Idempotent:
# does nothing when the pinned version is already there.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)/.s3rver
want=$(sed -n 's/.*"s3rver": "\(.*\)".*/\1/p' "$dir/package.json" | head -1)
have=$(sed -n 's/^  "version": "\(.*\)".*/\1/p' "$dir/node_modules/s3rver/package.json" 2>/dev/null || true)
if [ -n "$have" ] && [ "$have" = "$want" ] && [ -x "$dir/node_modules/.bin/s3rver" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "s3rver-install.sh: npm not found" >&2; exit 1; }
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
