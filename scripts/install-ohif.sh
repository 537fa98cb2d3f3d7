#!/usr/bin/env bash
# Puts OHIF's build (npm's @ohif/app, its dist/) into node_modules/@ohif/app
# for the viewer test (test/integration/ohif.test.ts). `npm test` runs it
# (`npm run viewer:install`) before the tests: `npm ci` empties node_modules,
# and the README's test command is `npm ci && npm test`. Nothing is done when
# the pinned version is there already.
#
# @ohif/app is not a devDependency because npm cannot install it: it depends
# on @ohif/i18n and @ohif/ui at exactly its own version, and npm has neither
# 3.13.2 (`npm install @ohif/app@3.13.2` fails with ETARGET). Its dist/ is a
# finished static site that needs none of its dependencies, so the tarball
# alone is fetched (`npm pack`, through npm's cache: a second run downloads
# nothing), checked against the integrity pinned here, and unpacked.
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.13.2
integrity='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
dest=node_modules/@ohif/app
if [ -f "$dest/dist/index.html" ] && grep -q "\"version\": \"$version\"" "$dest/package.json" 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm pack "@ohif/app@$version" --pack-destination "$tmp" --silent >/dev/null
tarball="$tmp/ohif-app-$version.tgz"
got=$(node -e 'const h = require("node:crypto").createHash("sha512"); h.update(require("node:fs").readFileSync(process.argv[1])); console.log("sha512-" + h.digest("base64"))' "$tarball")
if [ "$got" != "$integrity" ]; then
  echo "install-ohif: @ohif/app@$version does not have the pinned integrity (got $got)" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$dest"
tar -xzf "$tarball" -C "$dest" --strip-components=1 package/package.json package/LICENSE package/dist
