#!/usr/bin/env bats
# lab.bats - make bench-lab (test/bench/lab.sh runs it; not part of make
# check): the cold start of the networking lab's section-4 example, the
# quadlets of test/bats/640-lab.bats (test/bats/lab.bash). COLD times (5) with
# everything stopped but the two sockets:
#   8443  thirduser's first request through crossuser's nginx: nginx, its
#         activator, the web app's activator, web app, PostgreSQL, Redis
#   8080  crossuser's first request to the web app itself: its activator,
#         web app, PostgreSQL, Redis (no nginx)
# and the same request to 8443 with everything running (warm). curl's
# time_total, from connect to the last byte; the answer is checked, the
# times are printed (# lines), never asserted. PostgreSQL's data directory
# is initialized by a first request that is not counted.

load ../bats/helpers
load ../bats/lab

setup() {
  bro_setup
  requires root user_manager bro cmd:curl
  user_manager_ok "$CROSS_USER" || fail "bench requires the systemd --user manager of $CROSS_USER (test/rig/rig-up.sh)"
}

# timed USER PORT: one GET as USER; prints curl's time_total (seconds) and
# fails unless the app answered.
timed() {
  local out code_time
  out=$(as_user "$1" curl -sS --max-time 60 -w '\n%{http_code} %{time_total}' "http://127.0.0.1:$2/") ||
    { echo "curl as $1 to $2: $out" >&2; return 1; }
  code_time=${out##*$'\n'}
  [[ $code_time == "200 "* && $out == "lab: postgres"* ]] || { echo "as $1 to $2: $out" >&2; return 1; }
  echo "${code_time#200 }"
}

# median N...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# ms S...: seconds as milliseconds, rounded.
ms() { local s out=(); for s in "$@"; do out+=("$(awk -v s="$s" 'BEGIN {printf "%d", s*1000 + 0.5}')"); done; echo "${out[*]}"; }

@test "cold start of the lab's section-4 chain: the first request through nginx with everything stopped" {
  local n=${COLD:-5} i t web proxy cold8443=() cold8080=() warm=()
  web=$(lab_port 8080)
  proxy=$(lab_port 8443)
  lab_quadlets "$web" "$proxy"
  timed "$THIRD_USER" "$proxy" >/dev/null   # initdb, not counted
  for ((i = 0; i < n; i++)); do
    lab_stop
    t=$(timed "$THIRD_USER" "$proxy"); cold8443+=("$t")
    t=$(timed "$THIRD_USER" "$proxy"); warm+=("$t")
  done
  for ((i = 0; i < n; i++)); do
    lab_stop
    t=$(timed "$CROSS_USER" "$web"); cold8080+=("$t")
  done
  printf '# cold 8443 (thirduser via nginx, whole chain), ms: %s -> median %s\n' "$(ms "${cold8443[@]}")" "$(ms "$(median "${cold8443[@]}")")" >&3
  printf '# cold 8080 (crossuser to the web app, no nginx), ms: %s -> median %s\n' "$(ms "${cold8080[@]}")" "$(ms "$(median "${cold8080[@]}")")" >&3
  printf '# warm 8443 (everything running), ms: %s -> median %s\n' "$(ms "${warm[@]}")" "$(ms "$(median "${warm[@]}")")" >&3
}
