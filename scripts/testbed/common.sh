# shellcheck shell=bash
# Helpers shared by scripts/testbed/remote and scripts/testbed/slurm (sourced, not run).
# Facts for the tests go to $TESTBED_FACTS/<part>.json: written when a part is up, removed when down.

TESTBED_FACTS=/run/multicore-lab-testbed

say() { printf '%s: %s\n' "$PART" "$*"; }
die() { printf '%s: %s\n' "$PART" "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts daemons): sudo $0 $*"; }

# Packages are installed with their services left stopped: policy-rc.d (or no init system) keeps
# invoke-rc.d from starting a system sshd or slurmd; this script starts its own instances.
apt_install() {
  [ $# -gt 0 ] || return 0
  local started=$SECONDS
  say "installing $* (Debian packages)"
  apt-get update -qq
  NEEDRESTART_SUSPEND=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  say "installed in $((SECONDS - started)) s"
}

# pid from a pid file when that process is alive and its command line contains $2.
live_pid() {
  local file=$1 mark=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 1
  echo "$pid"
}

# Stops the process of a pid file (only when its command line contains $2), then removes the file.
stop_pidfile() {
  local file=$1 mark=$2 what=$3 pid
  if pid=$(live_pid "$file" "$mark"); then
    say "stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then say "$what did not stop in 30 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  fi
  rm -f "$file"
}

# wait_for SECONDS COMMAND...: true once COMMAND succeeds, false after SECONDS.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  while [ $SECONDS -lt $deadline ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done
  "$@" >/dev/null 2>&1
}

# write_if_changed FILE MODE: stdin to FILE when it differs; status 0 when it changed.
write_if_changed() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$file"
}

json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# write_facts NAME KEY VALUE [KEY VALUE ...]: $TESTBED_FACTS/NAME.json, all values strings
# except those given as KEY=int:N.
write_facts() {
  local name=$1; shift
  mkdir -p "$TESTBED_FACTS"
  {
    printf '{'
    local sep=''
    while [ $# -ge 2 ]; do
      printf '%s\n  %s: ' "$sep" "$(json_string "$1")"
      case $2 in int:*) printf '%s' "${2#int:}" ;; *) json_string "$2" ;; esac
      sep=','
      shift 2
    done
    printf '\n}\n'
  } | write_if_changed "$TESTBED_FACTS/$name.json" 0644 || true
}
