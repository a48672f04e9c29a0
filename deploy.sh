#!/usr/bin/env bash
# Deploy the relay from this machine: the fallback when GitHub Actions is not an option.
# It does what .github/workflows/deploy.yml does, with the secrets taken from .env.local (git-ignored).
#
#   ./deploy.sh --dry-run            preflight and plan; calls nothing (with --prepare: creates nothing)
#   ./deploy.sh                      deploy (asks once before changing anything; --yes skips the question)
#   ./deploy.sh --rollback [VERSION] make VERSION (default: the one before the live one) live again, with
#                                    the secrets it was deployed with
#   ./deploy.sh --env staging        the staging Worker, D1 and bucket ([env.staging]; .env.staging.local)
#   ./deploy.sh --env-file PATH      take the secrets from PATH instead of .env.local
#   ./deploy.sh --bundle DIR         offline: vendor the workers SDK and build the exact upload into DIR
#   ./deploy.sh --prepare            find or create the D1 database and the R2 bucket, and write
#                                    .wrangler-deploy.toml (wrangler.toml + the database id); the workflow uses it
#
# Steps: preflight (relay deploy-check) -> vendor SDK + build -> D1: find or create -> R2: find or create ->
# migrations -> one `wrangler deploy` carrying code, secrets and plain settings as one version tagged with the
# commit -> R2 lifecycle rule -> smoke check (GET /health 200, /status 401). See docs/DEPLOYMENT.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

ENV_FILE=
WRANGLER_ENV=
DRY_RUN=0
ASSUME_YES=0
PREPARE_ONLY=0
ROLLBACK=0
ROLLBACK_TO=
DB_ID_IN_TOML=
BUNDLE_DIR=
BUNDLE_MARKER=.relay-bundle
DEPLOY_CONFIG=.wrangler-deploy.toml
# The wrangler pinned in package-lock.json (npm ci); WRANGLER overrides it (tests use a stand-in).
WRANGLER=${WRANGLER:-"$ROOT/node_modules/.bin/wrangler"}

usage() {
  sed -n '2,17s/^# \{0,1\}//p' "$0"
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
    --rollback)
      ROLLBACK=1
      if [ $# -ge 2 ] && [ "${2#-}" = "$2" ]; then
        ROLLBACK_TO=$2
        shift
      fi
      ;;
    --env)
      [ $# -ge 2 ] || die "--env needs a name, e.g. --env staging"
      WRANGLER_ENV=$2
      shift
      ;;
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
ENV_FILE=${ENV_FILE:-.env${WRANGLER_ENV:+.$WRANGLER_ENV}.local}
[ -z "$ROLLBACK_TO" ] || [[ "$ROLLBACK_TO" =~ ^[0-9a-f-]{8,64}$ ]] ||
  die "'$ROLLBACK_TO' is not a version id (see npx wrangler versions list)"

WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  [ "$PREPARE_ONLY" -eq 1 ] || rm -f "$ROOT/$DEPLOY_CONFIG"
}
trap cleanup EXIT

# --- each process gets only what it needs -------------------------------------------------------------------

# wrangler: the Cloudflare credentials and its own settings, nothing else from this shell. `--env-file /dev/null`
# stops wrangler 4.86.0 from loading .env, .env.local (the shops' secrets) and .env.<env>[.local] from this
# directory into its environment, which it otherwise does on every call.
wr() {
  local bin=$WRANGLER
  (
    for name in $(compgen -e); do
      case "$name" in
        PATH | HOME | USER | LOGNAME | SHELL | TMPDIR | TERM | LANG | LC_* | TZ | CI | GITHUB_ACTIONS | XDG_* | \
          NODE_* | CLOUDFLARE_* | WRANGLER_* | [Hh][Tt][Tt][Pp]*_[Pp][Rr][Oo][Xx][Yy] | [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy] | \
          SSL_CERT_*) ;;
        *) unset "$name" 2>/dev/null || true ;;
      esac
    done
    exec "$bin" "$@" --env-file /dev/null
  )
}

# relay (the CPython tools): everything but the Cloudflare credentials, which it never needs.
relay() {
  (
    unset CLOUDFLARE_API_TOKEN CLOUDFLARE_API_KEY CLOUDFLARE_EMAIL CLOUDFLARE_ACCOUNT_ID
    exec uv run --frozen --quiet relay "$@"
  )
}

ENV_ARGS=()
[ -z "$WRANGLER_ENV" ] || ENV_ARGS=(--env "$WRANGLER_ENV")

# --- tools and names -------------------------------------------------------------------------------------

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

check_tools() {
  need uv "install uv (https://docs.astral.sh/uv/), then run uv sync"
  [ -x "$WRANGLER" ] || die "wrangler is not installed here: run npm ci (it installs the version pinned in package-lock.json)"
}

wrangler_version() {
  WRANGLER_VERSION=$(wr --version 2>/dev/null | tail -n 1)
}

read_names() { # WORKER DB_NAME DB_ID BUCKET COMPAT_DATE from wrangler.toml ([env.NAME] with --env)
  relay deploy-parse config "$WRANGLER_ENV" >"$WORK/names.txt" || die "fix wrangler.toml (above)"
  while IFS='=' read -r key value; do
    case "$key" in
      worker) WORKER=$value ;;
      database) DB_NAME=$value ;;
      database_id) DB_ID=$value DB_ID_IN_TOML=$value ;;
      bucket) BUCKET=$value ;;
      compatibility_date) COMPAT_DATE=$value ;;
    esac
  done <"$WORK/names.txt"
}

# --- the bundle: vendored SDK + our sources, built offline -----------------------------------------------

vendor_sdk() {
  # The workers SDK, hash-checked from uv.lock (group "worker"); python_modules/ belongs to this script.
  uv export --frozen --quiet --only-group worker --no-emit-project --format requirements-txt \
    -o "$WORK/worker-requirements.txt" >/dev/null
  rm -rf python_modules
  uv pip install --quiet --require-hashes --no-deps --target python_modules -r "$WORK/worker-requirements.txt"
}

check_bundle_dir() { # refuse DIR unless it is missing, empty, or a bundle this script built (marker file)
  local out=$1
  if [ -L "$out" ] || { [ -e "$out" ] && [ ! -d "$out" ]; }; then
    die "--bundle $out: that is not a directory; pick a new or empty directory, nothing was deleted"
  fi
  if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/$BUNDLE_MARKER" ]; then
    die "--bundle $out: the directory is not empty and is not a bundle built by deploy.sh (no $BUNDLE_MARKER); pick a new or empty directory, nothing was deleted"
  fi
}

clear_bundle_dir() { # clear_bundle_dir DIR: empty DIR if it is a bundle this script built; refuse anything else
  local out=$1
  check_bundle_dir "$out"
  if [ -d "$out" ]; then
    find "$out" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
  fi
  mkdir -p "$out"
  printf 'built by deploy.sh; ./deploy.sh --bundle empties and rebuilds this directory\n' >"$out/$BUNDLE_MARKER"
}

build_bundle() { # build_bundle DIR
  local out=$1
  clear_bundle_dir "$out"
  vendor_sdk
  wr deploy --dry-run --outdir "$out" -c wrangler.toml "${ENV_ARGS[@]}" >"$WORK/bundle.log" 2>&1 </dev/null ||
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

# --- D1 and R2: find or create, idempotently -------------------------------------------------------------

find_database() { # the id of the D1 database named $DB_NAME, or nothing
  wr d1 list --json 2>"$WORK/d1.err" </dev/null >"$WORK/d1.json" || return 1
  relay deploy-parse d1-id "$DB_NAME" <"$WORK/d1.json"
}

prepare_resources() { # sets DB_ID; writes $DEPLOY_CONFIG
  step "D1 database '$DB_NAME'"
  if [ -z "$DB_ID" ]; then
    DB_ID=$(find_database) || {
      cat "$WORK/d1.err" >&2
      die "could not list D1 databases (above); the API token needs D1 Edit"
    }
    if [ -z "$DB_ID" ]; then
      wr d1 create "$DB_NAME" </dev/null
      DB_ID=$(find_database)
      [ -n "$DB_ID" ] || die "created D1 database '$DB_NAME' but cannot find it; run ./deploy.sh again"
    fi
  fi
  echo "id $DB_ID"
  if [ -n "$DB_ID_IN_TOML" ]; then
    cp wrangler.toml "$DEPLOY_CONFIG"
  else
    awk -v name="database_name = \"$DB_NAME\"" -v id="$DB_ID" \
      '{ print } $0 == name && !done { print "database_id = \"" id "\""; done = 1 }' wrangler.toml >"$DEPLOY_CONFIG"
  fi

  step "R2 bucket '$BUCKET'"
  if wr r2 bucket info "$BUCKET" >/dev/null 2>&1 </dev/null; then
    echo "exists"
  else
    wr r2 bucket create "$BUCKET" </dev/null
  fi
}

check_login() {
  wrangler_version
  step "Cloudflare login"
  if wr whoami --json >"$WORK/whoami.json" 2>"$WORK/whoami.err" </dev/null; then
    echo "logged in (wrangler $WRANGLER_VERSION)"
  elif grep -q '"loggedIn": *false' "$WORK/whoami.json"; then
    die "not logged in to Cloudflare: run 'npx wrangler login', or export CLOUDFLARE_API_TOKEN (and CLOUDFLARE_ACCOUNT_ID)"
  else
    cat "$WORK/whoami.json" "$WORK/whoami.err" >&2
    die "could not reach Cloudflare to check the login (above): check the network, then run ./deploy.sh again"
  fi
}

confirm() { # confirm QUESTION: go on only with --yes or a "y" typed on a terminal
  [ "$ASSUME_YES" -eq 0 ] || return 0
  [ -t 0 ] || die "not asking on a non-interactive run: pass --yes, or --dry-run to see the plan"
  printf '\n%s [y/N] ' "$1"
  read -r answer
  case "$answer" in
    y | Y | yes) ;;
    *) die "nothing was changed" ;;
  esac
}

commit_id() { # the commit being deployed (GITHUB_SHA in CI), with "-dirty" when the work tree has changes
  local sha=${GITHUB_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
  if [ -z "${GITHUB_SHA:-}" ] && ! git diff --quiet HEAD -- 2>/dev/null; then sha="$sha-dirty"; fi
  printf '%s' "$sha"
}

live_versions() { # CURRENT_VERSION and PREVIOUS_VERSION from the deployment history (empty on a first deploy)
  CURRENT_VERSION=
  PREVIOUS_VERSION=
  if wr deployments list --json -c wrangler.toml "${ENV_ARGS[@]}" </dev/null >"$WORK/history.json" 2>/dev/null; then
    relay deploy-parse history <"$WORK/history.json" >"$WORK/history.txt" || return 0
    CURRENT_VERSION=$(sed -n 's/^current=//p' "$WORK/history.txt")
    PREVIOUS_VERSION=$(sed -n 's/^previous=//p' "$WORK/history.txt")
  fi
}

# --- modes without shops ------------------------------------------------------------------------------------

if [ -n "$BUNDLE_DIR" ]; then
  check_tools
  check_bundle_dir "$BUNDLE_DIR"
  wrangler_version
  read_names
  build_bundle "$BUNDLE_DIR"
  echo "bundle: $BUNDLE_DIR (wrangler $WRANGLER_VERSION, compatibility_date $COMPAT_DATE); nothing was uploaded"
  exit 0
fi

if [ "$ROLLBACK" -eq 1 ]; then
  check_tools
  read_names
  check_login
  step "Rollback of $WORKER"
  live_versions
  TARGET=${ROLLBACK_TO:-$PREVIOUS_VERSION}
  [ -n "$TARGET" ] || die "no earlier version to roll back to was found; pass one: ./deploy.sh --rollback VERSION (npx wrangler versions list)"
  echo "live now:       ${CURRENT_VERSION:-?}"
  echo "roll back to:   $TARGET (its code and the secrets and variables it was deployed with)"
  [ "$TARGET" != "$CURRENT_VERSION" ] || die "$TARGET is already the live version; nothing was changed"
  [ "$DRY_RUN" -eq 0 ] || {
    echo "dry run: nothing was changed"
    exit 0
  }
  confirm "Make version $TARGET of $WORKER live again?"
  wr rollback "$TARGET" --message "rollback by deploy.sh from ${CURRENT_VERSION:-?}" --yes -c wrangler.toml \
    "${ENV_ARGS[@]}" </dev/null
  step "Done"
  echo "  $WORKER now runs version $TARGET; to return: ./deploy.sh --rollback ${CURRENT_VERSION:-VERSION}${WRANGLER_ENV:+ --env $WRANGLER_ENV}"
  echo "  D1 and R2 are unchanged (see docs/DEPLOYMENT.md, Rolling back). Revert the commit on main, or the next deploy brings it back."
  exit 0
fi

if [ "$PREPARE_ONLY" -eq 1 ]; then
  check_tools
  read_names
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "dry run: would find or create D1 '$DB_NAME' and R2 '$BUCKET', and write $DEPLOY_CONFIG; nothing was created"
    exit 0
  fi
  check_login
  prepare_resources
  echo "wrote $DEPLOY_CONFIG (D1 $DB_NAME = $DB_ID)"
  exit 0
fi

# --- preflight: every input, before the first change -----------------------------------------------------

check_tools
[ -f "$ENV_FILE" ] || die "$ENV_FILE not found: copy .env.example to $ENV_FILE, chmod 600 it and fill in your shops"

step "Preflight: $ENV_FILE"
relay deploy-check --env-file "$ENV_FILE" --lifecycle "$WORK/lifecycle.json" >"$WORK/preflight.txt" ||
  die "fix $ENV_FILE (errors above); nothing was deployed"
SHOPS=$(sed -n 's/^shops=//p' "$WORK/preflight.txt")
RETENTION_DAYS=$(sed -n 's/^retention_days=//p' "$WORK/preflight.txt")
read_names
COMMIT=$(commit_id)

if [ "$DRY_RUN" -eq 1 ]; then
  wrangler_version
  cat <<EOF

== Plan (dry run: nothing below is called)
  Worker     $WORKER (wrangler $WRANGLER_VERSION, compatibility_date $COMPAT_DATE)
  Shops      $SHOPS (from $ENV_FILE)
  Commit     $COMMIT
  1. check the Cloudflare login (wrangler whoami)
  2. vendor workers-runtime-sdk from uv.lock into python_modules/ and build the upload
  3. D1 '$DB_NAME': find by name, create if missing
  4. R2 '$BUCKET': create if missing
  5. D1 migrations --remote (only the ones not applied yet)
  6. wrangler deploy: code, secrets (stdin) and plain settings (--var) as one version tagged ${COMMIT:0:12}
  7. R2 lifecycle: delete logs/ after $RETENTION_DAYS days (replaces the bucket's rules)
  8. smoke check: GET /health 200, GET /status 401 without the token
EOF
  exit 0
fi

# --- Cloudflare ------------------------------------------------------------------------------------------

check_login
confirm "Deploy $WORKER with shops $SHOPS to Cloudflare?"

step "Build"
build_bundle "$WORK/bundle"

prepare_resources

step "D1 migrations"
# stdin from /dev/null: wrangler applies without asking, as it does in CI.
wr d1 migrations apply "$DB_NAME" --remote -c "$DEPLOY_CONFIG" "${ENV_ARGS[@]}" </dev/null 2>&1 |
  tee "$WORK/migrations.log" || die "the D1 migrations failed (above); the live version is unchanged"
APPLIED=$(relay deploy-parse migrations <"$WORK/migrations.log")

step "Deploy (code, secrets and settings as one version)"
live_versions
# Names only: which relay secrets the Worker holds now (stale ones are reported; bulk never deletes), and
# which names must stay secrets because Cloudflare refuses a variable named like an existing secret.
wr secret list -c "$DEPLOY_CONFIG" "${ENV_ARGS[@]}" --format json </dev/null >"$WORK/worker-secrets.json" 2>/dev/null ||
  echo '[]' >"$WORK/worker-secrets.json"
relay secrets --env-file "$ENV_FILE" --worker-secrets "$WORK/worker-secrets.json" --vars >"$WORK/vars.txt"
VAR_ARGS=()
while IFS= read -r line; do
  [ -z "$line" ] || VAR_ARGS+=(--var "$line")
done <"$WORK/vars.txt"
# The secret values travel on a pipe from relay to wrangler (--secrets-file /dev/stdin): never in argv, on
# the screen or on disk. wrangler uploads code, secrets and variables in one request: one version, live at once.
relay secrets --env-file "$ENV_FILE" --worker-secrets "$WORK/worker-secrets.json" 2>"$WORK/secrets.err" |
  WRANGLER_OUTPUT_FILE_PATH="$WORK/deploy.ndjson" wr deploy -c "$DEPLOY_CONFIG" "${ENV_ARGS[@]}" \
    --secrets-file /dev/stdin --tag "${COMMIT:0:12}" --message "commit $COMMIT (deploy.sh)" "${VAR_ARGS[@]}" ||
  {
    cat "$WORK/secrets.err" >&2
    die "the deploy failed (above); the version that was live before (${CURRENT_VERSION:-none}) still is"
  }
grep 'warning' "$WORK/secrets.err" >&2 || true
relay deploy-parse deploy-output "$WORK/deploy.ndjson" >"$WORK/deployed.txt"
VERSION=$(sed -n 's/^version=//p' "$WORK/deployed.txt")
URL=$(sed -n 's/^url=//p' "$WORK/deployed.txt")
ROLLBACK_CMD="./deploy.sh --rollback ${CURRENT_VERSION:-<previous version>}${WRANGLER_ENV:+ --env $WRANGLER_ENV}"

step "Log retention"
wr r2 bucket lifecycle set "$BUCKET" --file "$WORK/lifecycle.json" --force </dev/null

step "Smoke check"
if [ -z "$URL" ]; then
  die "wrangler printed no address for the Worker, so it could not be checked; if it misbehaves: $ROLLBACK_CMD"
fi
relay smoke "$URL" --tries "${SMOKE_TRIES:-6}" || die "version ${VERSION:-?} is live but failed the smoke check (above); to roll back: $ROLLBACK_CMD"

step "Done"
cat <<EOF
  Worker     $WORKER $URL
  Version    ${VERSION:-?} (tag ${COMMIT:0:12}); before it: ${CURRENT_VERSION:-none (first deploy)}
  Roll back  $ROLLBACK_CMD
  D1         $DB_NAME ($DB_ID), migrations applied: ${APPLIED:-none (all were applied before)}
  R2         $BUCKET, logs deleted after $RETENTION_DAYS days
  Shops      $SHOPS
Next, once per shop: uv run relay webhooks register --env-file $ENV_FILE --shop NAME --url $URL/?shop=NAME
EOF
