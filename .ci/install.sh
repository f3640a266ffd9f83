# shellcheck shell=bash
# Idempotent installer for streamdash development and CI.
#
#   bash .ci/install.sh       # run it
#   source .ci/install.sh     # or source it (as .ci/run does): also puts .venv/bin on PATH
#
# 1. apt: redis-server and chromium, only if missing (plus PostgreSQL server binaries and
#    python3-venv, again only if missing, so that a fresh Debian machine works).
# 2. <repo>/.venv with `pip install -e '.[server,dev]'` (re-run only when pyproject.toml or the
#    extras change). The base install is the SDK alone; `server` is the Django service.
# 3. `npm ci` in tests/conformance, tests/browser/react and tests/types (re-run only when a
#    lock file changes).

_sd_install_main() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    export STREAMDASH_ROOT="$root"
    _sd_say() { printf 'install: %s\n' "$*" >&2; }

    # --- system packages ------------------------------------------------------------------
    local -a pkgs=()
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        pkgs+=(postgresql)
    fi
    command -v pg_isready >/dev/null 2>&1 || pkgs+=(postgresql-client)
    if [[ ! -x "$root/.venv/bin/python" ]] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    if ((${#pkgs[@]})); then
        local -a sudo=()
        if [[ "$(id -u)" -ne 0 ]]; then
            if command -v sudo >/dev/null 2>&1; then
                sudo=(sudo -n)
            else
                printf 'install: ERROR: need root (or sudo) to apt-get install: %s\n' "${pkgs[*]}" >&2
                return 1
            fi
        fi
        if ! command -v apt-get >/dev/null 2>&1; then
            printf 'install: ERROR: apt-get not available; please install: %s\n' "${pkgs[*]}" >&2
            return 1
        fi
        _sd_say "apt-get install ${pkgs[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || {
            printf 'install: ERROR: apt-get update failed\n' >&2
            return 1
        }
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${pkgs[@]}" || {
            printf 'install: ERROR: apt-get install %s failed\n' "${pkgs[*]}" >&2
            return 1
        }
    fi
    # Debian puts initdb/pg_ctl outside PATH; expose them for services.sh and humans.
    if ! command -v initdb >/dev/null 2>&1; then
        local pgbin
        pgbin="$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)"
        [[ -n "$pgbin" ]] && export PATH="$PATH:$pgbin"
    fi

    # --- python virtualenv ----------------------------------------------------------------
    local venv="$root/.venv" stamp want
    if [[ ! -x "$venv/bin/python" ]]; then
        _sd_say "creating $venv"
        python3 -m venv "$venv" || {
            printf 'install: ERROR: python3 -m venv failed\n' >&2
            return 1
        }
    fi
    local spec=".[server,dev]"
    stamp="$venv/.streamdash-install-stamp"
    want="$({ printf '%s\n' "$spec"; cat "$root/pyproject.toml"; } | sha256sum | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        _sd_say "pip install -e '$spec' into $venv"
        (cd "$root" &&
            PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -e "$spec") || {
            printf 'install: ERROR: pip install -e %s failed\n' "$spec" >&2
            return 1
        }
        printf '%s\n' "$want" >"$stamp"
    else
        _sd_say "$venv is up to date"
    fi
    export VIRTUAL_ENV="$venv"
    case ":$PATH:" in
    *":$venv/bin:"*) ;;
    *) export PATH="$venv/bin:$PATH" ;;
    esac

    # --- npm packages: the conformance suite, React for the browser tests, TypeScript -----
    local dir
    for dir in "$root/tests/conformance" "$root/tests/browser/react" "$root/tests/types"; do
        _sd_npm_ci "$dir" || return 1
    done
    return 0
}

# npm ci in DIR when its lock file changed since the last install (a stamp in node_modules).
_sd_npm_ci() {
    local dir="$1" name lockhash
    [[ -f "$dir/package-lock.json" ]] || return 0
    name="${dir#"$root"/}"
    if ! command -v npm >/dev/null 2>&1; then
        printf 'install: ERROR: npm not found (needed for %s)\n' "$name" >&2
        return 1
    fi
    lockhash="$(cat "$dir/package-lock.json" "$dir/package.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [[ -f "$dir/node_modules/.streamdash-npm-stamp" &&
        "$(cat "$dir/node_modules/.streamdash-npm-stamp")" == "$lockhash" ]]; then
        _sd_say "$name/node_modules is up to date"
        return 0
    fi
    _sd_say "npm ci in $name"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || {
        printf 'install: ERROR: npm ci in %s failed\n' "$name" >&2
        return 1
    }
    mkdir -p "$dir/node_modules"
    printf '%s\n' "$lockhash" >"$dir/node_modules/.streamdash-npm-stamp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Executed: strict mode, exit with the result.
    set -euo pipefail
    _sd_install_main "$@"
else
    # Sourced (e.g. by .ci/run): report failure through the return status.
    _sd_install_main "$@" || return 1
fi
