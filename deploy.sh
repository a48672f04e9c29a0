#!/usr/bin/env bash
# Deploy the relay from this machine: the fallback when GitHub Actions is not an option.
# It does what .github/workflows/deploy.yml does, with the secrets taken from .env.local (git-ignored).
#
#   ./deploy.sh --dry-run          check tools and shops, print the plan; calls nothing
#   ./deploy.sh                    deploy (asks once before changing anything; --yes skips the question)
#   ./deploy.sh --env-file PATH    take the secrets from PATH instead of .env.local
#   ./deploy.sh --bundle DIR       offline: vendor the workers SDK and build the exact upload into DIR
#   ./deploy.sh --prepare          find or create the D1 database and the R2 bucket, and write
#                                  .wrangler-deploy.toml (wrangler.toml + the database id); the workflow uses it
#
# Steps: validate shops (relay secrets --check) -> vendor SDK + build -> D1: find or create, migrate ->
# R2: find or create -> wrangler deploy -> R2 lifecycle rule -> secrets (relay secrets | wrangler secret bulk).
# Every step is idempotent: running it twice changes nothing the second time. See docs/DEPLOYMENT.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

ENV_FILE=.env.local
DRY_RUN=0
ASSUME_YES=0
PREPARE_ONLY=0
BUNDLE_DIR=
DEPLOY_CONFIG=.wrangler-deploy.toml
# The wrangler pinned in package-lock.json (npm ci); WRANGLER overrides it (tests use a stand-in).
WRANGLER=${WRANGLER:-"$ROOT/node_modules/.bin/wrangler"}

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "$0"
}

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}

step() {
  printf '\n== %s\n' "$*"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --yes | -y) ASSUME_YES=1 ;;
    --prepare) PREPARE_ONLY=1 ;;
    --env-file)
      [ $# -ge 2 ] || die "--env-file needs a path"
      ENV_FILE=$2
      shift
      ;;
    --bundle)
      [ $# -ge 2 ] || die "--bundle needs a directory"
      BUNDLE_DIR=$2
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option '$1' (see ./deploy.sh --help)" ;;
  esac
  shift
done

WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  [ "$PREPARE_ONLY" -eq 1 ] || rm -f "$ROOT/$DEPLOY_CONFIG"
}
trap cleanup EXIT

# --- what the config says --------------------------------------------------------------------------

toml_value() { # toml_value KEY: the first `KEY = "value"` in wrangler.toml
  sed -n "s/^$1 = \"\(.*\)\"[[:space:]]*\$/\1/p" wrangler.toml | head -n 1
}

WORKER=$(toml_value name)
DB_NAME=$(toml_value database_name)
BUCKET=$(toml_value bucket_name)
COMPAT_DATE=$(toml_value compatibility_date)
[ -n "$WORKER" ] && [ -n "$DB_NAME" ] && [ -n "$BUCKET" ] ||
  die "wrangler.toml must name the Worker, the D1 database and the R2 bucket"

# --- tools -----------------------------------------------------------------------------------------

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

check_tools() {
  need node "install Node.js 20 or newer (https://nodejs.org), then run npm ci"
  need uv "install uv (https://docs.astral.sh/uv/), then run uv sync"
  [ -x "$WRANGLER" ] || die "wrangler is not installed here: run npm ci (it installs the version pinned in package-lock.json)"
  WRANGLER_VERSION=$("$WRANGLER" --version 2>/dev/null | tail -n 1)
}

relay() {
  uv run --frozen --quiet relay "$@"
}

# --- the bundle: vendored SDK + our sources, built offline -----------------------------------------

vendor_sdk() {
  # The workers SDK, hash-checked from uv.lock (group "worker"); python_modules/ belongs to this script.
  uv export --frozen --quiet --only-group worker --no-emit-project --format requirements-txt \
    -o "$WORK/worker-requirements.txt" >/dev/null
  rm -rf python_modules
  uv pip install --quiet --require-hashes --no-deps --target python_modules -r "$WORK/worker-requirements.txt"
}

build_bundle() { # build_bundle DIR
  local out=$1
  vendor_sdk
  rm -rf "$out"
  "$WRANGLER" deploy --dry-run --outdir "$out" -c wrangler.toml >"$WORK/bundle.log" 2>&1 ||
    {
      cat "$WORK/bundle.log" >&2
      die "wrangler could not build the Worker (above)"
    }
  local missing=
  for file in entry.py relay/web/routes.py relay/jobs/delivery.py python_modules/workers/__init__.py; do
    [ -f "$out/$file" ] || missing="$missing $file"
  done
  [ -z "$missing" ] || die "the built Worker lacks:$missing"
  if find "$out" -name '.env*' | grep -q .; then
    die "the built Worker contains an .env file; remove it from src/"
  fi
  grep -E 'Total Upload' "$WORK/bundle.log" || true
}

# --- D1 and R2: find or create, idempotently -------------------------------------------------------

find_database() { # the id of the D1 database named $DB_NAME, or nothing
  "$WRANGLER" d1 list --json 2>"$WORK/d1.err" </dev/null | node -e '
    let text = "";
    process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => {
      const list = JSON.parse(text.slice(text.indexOf("["), text.lastIndexOf("]") + 1));
      const db = list.find((d) => d.name === process.argv[1]);
      process.stdout.write(db ? db.uuid : "");
    });' "$DB_NAME"
}

prepare_resources() { # sets DB_ID; writes $DEPLOY_CONFIG
  step "D1 database '$DB_NAME'"
  DB_ID=$(sed -n 's/^database_id = "\(.*\)"/\1/p' wrangler.toml)
  if [ -z "$DB_ID" ]; then
    DB_ID=$(find_database) || {
      cat "$WORK/d1.err" >&2
      die "could not list D1 databases (above); the API token needs D1 Edit"
    }
    if [ -z "$DB_ID" ]; then
      "$WRANGLER" d1 create "$DB_NAME" </dev/null
      DB_ID=$(find_database)
      [ -n "$DB_ID" ] || die "created D1 database '$DB_NAME' but cannot find it; run ./deploy.sh again"
    fi
  fi
  echo "id $DB_ID"
  if grep -q '^database_id = ' wrangler.toml; then
    cp wrangler.toml "$DEPLOY_CONFIG"
  else
    awk -v id="$DB_ID" '{ print } /^database_name = / && !done { print "database_id = \"" id "\""; done = 1 }' \
      wrangler.toml >"$DEPLOY_CONFIG"
  fi

  step "R2 bucket '$BUCKET'"
  if "$WRANGLER" r2 bucket info "$BUCKET" >/dev/null 2>&1 </dev/null; then
    echo "exists"
  else
    "$WRANGLER" r2 bucket create "$BUCKET" </dev/null
  fi
}

check_login() {
  step "Cloudflare login"
  "$WRANGLER" whoami --json >"$WORK/whoami.json" 2>"$WORK/whoami.err" </dev/null ||
    die "not logged in to Cloudflare: run 'npx wrangler login', or export CLOUDFLARE_API_TOKEN (and CLOUDFLARE_ACCOUNT_ID)"
  echo "logged in (wrangler $WRANGLER_VERSION)"
}

if [ -n "$BUNDLE_DIR" ]; then
  check_tools
  build_bundle "$BUNDLE_DIR"
  echo "bundle: $BUNDLE_DIR (wrangler $WRANGLER_VERSION, compatibility_date $COMPAT_DATE); nothing was uploaded"
  exit 0
fi

if [ "$PREPARE_ONLY" -eq 1 ]; then
  check_tools
  check_login
  prepare_resources
  echo "wrote $DEPLOY_CONFIG (D1 $DB_NAME = $DB_ID)"
  exit 0
fi

# --- shops -----------------------------------------------------------------------------------------

check_tools
[ -f "$ENV_FILE" ] || die "$ENV_FILE not found: copy .env.example to $ENV_FILE and fill in your shops"

step "Shops in $ENV_FILE"
if ! relay secrets --env-file "$ENV_FILE" --check >"$WORK/shops.txt"; then
  die "fix $ENV_FILE (errors above); nothing was deployed"
fi
SHOPS=$(paste -sd, "$WORK/shops.txt")

RETENTION_DAYS=${LOG_RETENTION_DAYS:-$(sed -n 's/^\(export \)\{0,1\}LOG_RETENTION_DAYS=["'\'']\{0,1\}\([0-9]*\).*/\2/p' "$ENV_FILE" | tail -n 1)}
RETENTION_DAYS=${RETENTION_DAYS:-90}
relay r2-lifecycle --days "$RETENTION_DAYS" >"$WORK/lifecycle.json" || die "LOG_RETENTION_DAYS is not usable (above)"

MIGRATIONS=
for file in migrations/*.sql; do
  if [ -e "$file" ]; then MIGRATIONS="$MIGRATIONS ${file#migrations/}"; fi
done
MIGRATIONS=${MIGRATIONS# }

if [ "$DRY_RUN" -eq 1 ]; then
  cat <<EOF

== Plan (dry run: nothing below is called)
  Worker     $WORKER (wrangler $WRANGLER_VERSION, compatibility_date $COMPAT_DATE)
  Shops      $SHOPS (from $ENV_FILE)
  1. check the Cloudflare login (wrangler whoami)
  2. vendor workers-runtime-sdk from uv.lock into python_modules/ and build the upload
  3. D1 '$DB_NAME': find by name, create if missing; apply migrations --remote ($MIGRATIONS)
  4. R2 '$BUCKET': create if missing
  5. wrangler deploy
  6. R2 lifecycle: delete logs/ after $RETENTION_DAYS days (replaces the bucket's rules)
  7. wrangler secret bulk: the secrets listed above, values on stdin
EOF
  exit 0
fi

# --- Cloudflare ------------------------------------------------------------------------------------

check_login

if [ "$ASSUME_YES" -eq 0 ]; then
  [ -t 0 ] || die "not asking on a non-interactive run: pass --yes to deploy, or --dry-run to see the plan"
  printf '\nDeploy %s with shops %s to Cloudflare? [y/N] ' "$WORKER" "$SHOPS"
  read -r answer
  case "$answer" in
    y | Y | yes) ;;
    *) die "nothing was deployed" ;;
  esac
fi

step "Build"
build_bundle "$WORK/bundle"

prepare_resources

step "D1 migrations"
# stdin from /dev/null: wrangler applies without asking, as it does in CI.
"$WRANGLER" d1 migrations apply "$DB_NAME" --remote -c "$DEPLOY_CONFIG" </dev/null

step "Deploy"
"$WRANGLER" deploy -c "$DEPLOY_CONFIG" </dev/null 2>&1 | tee "$WORK/deploy.log"
URL=$(grep -Eo 'https://[A-Za-z0-9.-]+\.workers\.dev' "$WORK/deploy.log" | head -n 1 || true)
VERSION=$(sed -n 's/.*Current Version ID: *\([0-9a-f-]*\).*/\1/p' "$WORK/deploy.log" | head -n 1)

step "Log retention"
"$WRANGLER" r2 bucket lifecycle set "$BUCKET" --file "$WORK/lifecycle.json" --force </dev/null

step "Secrets"
# The names the Worker has now, so relay can warn about ones the env file no longer sets (bulk never deletes).
"$WRANGLER" secret list -c "$DEPLOY_CONFIG" --format json </dev/null >"$WORK/worker-secrets.json" 2>/dev/null || true
# Values travel on a pipe from relay to wrangler's stdin: never in argv, never on the screen.
relay secrets --env-file "$ENV_FILE" --worker-secrets "$WORK/worker-secrets.json" 2>"$WORK/secrets.err" |
  "$WRANGLER" secret bulk -c "$DEPLOY_CONFIG" || {
  cat "$WORK/secrets.err" >&2
  die "the secrets were not all uploaded (above); the new code is live, run ./deploy.sh again to finish"
}
grep 'warning' "$WORK/secrets.err" >&2 || true

step "Done"
cat <<EOF
  Worker     $WORKER ${URL:-(no workers.dev address printed; see the Cloudflare dashboard)}
  Version    ${VERSION:-?} (roll back with: npx wrangler rollback)
  D1         $DB_NAME ($DB_ID), migrations applied: $MIGRATIONS
  R2         $BUCKET, logs deleted after $RETENTION_DAYS days
  Shops      $SHOPS
Next, once per shop: uv run relay webhooks register --env-file $ENV_FILE --shop NAME --url ${URL:-https://<worker>}/?shop=NAME
EOF
