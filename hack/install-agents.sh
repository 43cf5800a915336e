#!/usr/bin/env bash
# Install the agent clients the end-to-end agent tests run (tests/agents): Claude Code and Codex CLI,
# pinned, from npm, into a cache outside the repo.
#
# Output: $XROUTER_AGENTS_DIR (default ~/.cache/xrouter/agents)/node_modules/.bin/{claude,codex}.
# Idempotent like hack/build-tools.sh: a stamp holds the pinned versions, and a warm cache does nothing.
# Both packages ship a native binary per platform as an optional dependency, so npm fetches only this
# machine's (about 360 MB for Claude Code, 400 MB for Codex, unpacked); nothing runs at install
# time that reaches beyond the npm registry.
set -euo pipefail

CLAUDE_CODE_VERSION="2.1.328"   # @anthropic-ai/claude-code
CODEX_VERSION="0.169.0"         # @openai/codex

AGENTS_DIR="${XROUTER_AGENTS_DIR:-$HOME/.cache/xrouter/agents}"
STAMP="$AGENTS_DIR/stamp"
WANT="claude-code=$CLAUDE_CODE_VERSION codex=$CODEX_VERSION"
BIN="$AGENTS_DIR/node_modules/.bin"

if [[ -f "$STAMP" && "$(<"$STAMP")" == "$WANT" && -x "$BIN/claude" && -x "$BIN/codex" ]]; then
  echo "install-agents: $WANT up to date in $BIN"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-agents: npm is not installed (make deps installs it)" >&2
  exit 1
fi

mkdir -p "$AGENTS_DIR"
rm -f "$STAMP"
# A package.json of our own keeps npm from walking up into a parent project; --no-fund/--no-audit keep
# npm from calling anything but the registry.
printf '{"name":"xrouter-agents","private":true}\n' > "$AGENTS_DIR/package.json"
npm install --prefix "$AGENTS_DIR" --no-fund --no-audit --no-save --loglevel=error \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"
"$BIN/claude" --version
"$BIN/codex" --version
echo "$WANT" > "$STAMP"
echo "install-agents: $WANT installed in $BIN"
