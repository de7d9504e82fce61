#!/usr/bin/env bash
# CI for the browser client and its npm package (@gonotify/notify), called by .ci/run:
#   - package.json's version is the one in ../VERSION (the Go modules' release), LICENSE the root's;
#   - the unit tests (node --test test/);
#   - `npm pack` holds exactly the files a user needs;
#   - the packed tarball, installed as from npm with TypeScript, esbuild, React and React DOM:
#     tsc --noEmit --strict over npmtest/api.ts, which uses the whole public API;
#   - esbuild bundles npmtest/page.js, which imports the package by name, and
#     example/npm_e2e_test.go drives that page in Chromium against the example app.
#
# Usage: client/ci.sh [--build-only] [DIR]
# The bundled page goes to DIR (default $NOTIFY_NPM_BUNDLE, else a temporary directory). With
# --build-only only the tarball is packed, installed and bundled into DIR: the Go test does that
# when NOTIFY_NPM_BUNDLE is not set. npm installs into a temporary directory, removed at exit;
# nothing is cached and nothing is written under client/.
set -euo pipefail
cd "$(dirname "$0")"

build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${1:-${NOTIFY_NPM_BUNDLE:-$work/bundle}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

step() { printf '\n== client: %s\n' "$*"; }
fail() { printf 'client/ci.sh: %s\n' "$*" >&2; exit 1; }

step "version and license"
want=$(tr -d '[:space:]' < ../VERSION)
got=$(node -p 'require("./package.json").version')
[ "$want" = "$got" ] || fail "package.json version $got, VERSION says $want"
cmp -s LICENSE ../LICENSE || fail "client/LICENSE differs from ../LICENSE (cp LICENSE client/)"

if [ "$build_only" = 0 ]; then
  step "unit tests"
  node --test --test-reporter=dot test/
fi

step "npm pack: exactly the package's files"
want_files="LICENSE README.md notify.d.ts notify.js package.json react.d.ts react.js"
got_files=$(npm pack --dry-run --json 2>/dev/null | node -e '
  const [p] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(p.files.map((f) => f.path).sort().join(" "));')
[ "$got_files" = "$want_files" ] || fail "the tarball holds: $got_files; want: $want_files"
tarball=$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)

step "install the tarball as from npm, with typescript, esbuild, react, react-dom"
mkdir "$work/app"
cp npmtest/api.ts npmtest/page.js "$work/app/"
(
  cd "$work/app"
  printf '{"name":"notify-npm-check","private":true,"type":"module"}\n' > package.json
  npm install --no-audit --no-fund --loglevel=error --no-package-lock \
    "$tarball" typescript@5 esbuild@0.28 react@19 react-dom@19 >/dev/null
  # The installed package's files are the tarball's, not a link to client/.
  [ ! -L node_modules/@gonotify/notify ] || fail "the package was linked, not installed"

  if [ "$build_only" = 0 ]; then
    step "tsc --noEmit --strict over the whole public API"
    npx --no-install tsc --noEmit --strict --target es2022 --module esnext --moduleResolution bundler \
      --lib es2022,dom api.ts
  fi

  step "esbuild: a page importing @gonotify/notify and @gonotify/notify/react by name"
  npx --no-install esbuild page.js --bundle --format=esm --target=es2022 --log-level=warning \
    --define:process.env.NODE_ENV='"production"' --outfile="$out/page.js"
)
cp npmtest/index.html "$out/"
echo "bundle: $out"

if [ "$build_only" = 0 ]; then
  step "the bundled page in Chromium (example: go test -run TestE2ENPMPackage)"
  (cd ../example && NOTIFY_NPM_BUNDLE=$out go test -race -count=1 -run '^TestE2ENPMPackage$' .)
fi
