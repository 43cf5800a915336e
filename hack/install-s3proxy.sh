#!/usr/bin/env bash
# S3Proxy (github.com/gaul/s3proxy), a real S3 server with a filesystem backend, for the S3 backup
# tests (tests/operator/test_op_backup_s3.py): the jar and its dependencies from Maven Central, with
# the machine's Maven, into ~/.cache/xrouter/s3proxy-VERSION/lib (outside the repo). Run with the
# machine's Java (17). The version is pinned in hack/s3proxy/pom.xml.
# Idempotent: a stamp file marks a finished copy, and a warm cache does nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
pom="$here/s3proxy/pom.xml"
version="$(sed -n 's:.*<s3proxy.version>\(.*\)</s3proxy.version>.*:\1:p' "$pom")"
dest="${XROUTER_S3PROXY_DIR:-$HOME/.cache/xrouter/s3proxy-$version}"

if [ -e "$dest/.installed" ]; then
  echo "install-s3proxy: s3proxy $version already in $dest"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "install-s3proxy: needs $tool (Debian: default-jre-headless, maven)" >&2; exit 1; }
done
rm -rf "$dest" && mkdir -p "$dest"
# Into a fresh directory, then the stamp: an interrupted copy is never taken for a finished one.
mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest/lib"
touch "$dest/.installed"
echo "install-s3proxy: s3proxy $version in $dest ($(find "$dest/lib" -name '*.jar' | wc -l) jars)"
