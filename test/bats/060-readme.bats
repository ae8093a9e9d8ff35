#!/usr/bin/env bats
# 060-readme: every command the README shows is run, so that an example in
# the README can no longer fail (bro-activate --idle-stop 5min once did).
# test/readme/commands.sh extracts them; the Use section runs for real, as
# written but for the names, port and data directory (the demo may be running
# test-postgresql on 5432: a test finds only what it made).

load helpers
load pg

README=$BRO_REPO/README.md

# readme_use: the quadlet and the commands of the README's "## Use" section.
readme_use_ini() { awk '/^## Use/{u=1} u&&/^```ini/{f=1;next} f&&/^```/{exit} f' "$README"; }
readme_use_cmds() {
  awk '/^## Use/{u=1;next} u&&/^## /{exit} u&&/^```/{f=!f;next} u&&!f&&/^    [a-z]/{print substr($0,5)} u&&!f&&/^### /{exit}' "$README" |
    sed -E 's/[[:space:]]{2,}#.*$//'
}

@test "README: the Use section as written, on a free port: the first psql starts PostgreSQL" {
  requires root bro user_manager
  local name=$BRO_TEST_PREFIX-pg port data ini cmd
  port=$(free_port)
  data=$(user_tmpdir "$RIG_USER")/pgdata
  as_user "$RIG_USER" mkdir -p "$data"
  ini=$(readme_use_ini)
  [[ $ini == *"Annotation=bro.activate=5432"* ]] || fail "no quadlet with Annotation=bro.activate=5432 in the README's Use section"
  ini=$(sed -E -e "s|test-postgresql|$name|g" -e "s|^Volume=[^:]*:|Volume=$data:|" \
    -e "s|^Annotation=bro.activate=5432$|Annotation=bro.activate=127.0.0.1:$port:5432|" <<<"$ini")
  write_quadlet "$RIG_USER" "$name.container" "$ini"
  mapfile -t cmds < <(readme_use_cmds)
  (( ${#cmds[@]} >= 4 )) || fail "want the Use section's commands, got: ${cmds[*]}"
  for cmd in "${cmds[@]}"; do
    cmd=${cmd//test-postgresql/$name}
    case $cmd in
      bro-activate\ *) cmd="$BRO_ACTIVATE ${cmd#bro-activate }" ;;
      psql\ *) cmd="env PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=60 $PSQL ${cmd#psql } -p $port -tA -c 'SELECT 40 + 2'" ;;
    esac
    run_cmd 0 as_user "$RIG_USER" sh -c "$cmd"
  done
  assert_output 42
  run_cmd 0 unit_state "$name.service"
  assert_output active
}

@test "README: every bro-activate, bro-proxy and make command parses and does what it says (dry run)" {
  requires root bro user_manager
  local name=$BRO_TEST_PREFIX-q port line args n=0 m
  port=$(free_port)
  write_quadlet "$RIG_USER" "$name.container" "[Container]
Image=$BBOX_IMAGE
Network=none
Annotation=bro.activate=127.0.0.1:$port:5432"
  mapfile -t lines < <("$BRO_REPO/test/readme/commands.sh" "$README")
  (( ${#lines[@]} > 10 )) || fail "commands.sh found only ${#lines[@]} commands in the README"
  for line in "${lines[@]}"; do
    line=${line//…/}
    line=${line//test-postgresql/$name}
    line=$(sed -E "s/(^| )NAME( |$)/\1$name\2/g" <<<"$line")
    case $line in
      make\ *|sudo\ make\ *)
        # each make of a chain: the target exists and its recipe expands
        while read -r m; do
          m=${m#sudo }
          run_cmd 0 make -n -C "$BRO_REPO" ${m#make}
        done < <(sed 's/ && /\n/g' <<<"$line")
        ;;
      bro-activate\ completion\ *|bro-proxy\ --completion\ *)
        # the script, into a file of this test; it must be one bash reads
        local prog=$BRO_ACTIVATE out=$BATS_TEST_TMPDIR/completion
        [[ $line == bro-proxy* ]] && prog=$BRO_PROXY
        args=${line#* }
        args=${args%% >*}
        # shellcheck disable=SC2086
        run_cmd 0 bash -c '"$@" > "$0" && bash -n "$0" && grep -q "^complete -F" "$0"' "$out" "$prog" $args
        ;;
      bro-activate\ status*)
        run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" ${line#bro-activate }
        ;;
      bro-activate\ *|bro-activate-direct\ *)
        local prog=$BRO_ACTIVATE
        [[ $line == bro-activate-direct\ * ]] && prog=$BRO_ACTIVATE_DIRECT
        args=${line#* }
        # shellcheck disable=SC2086 # the README's words, split as a shell would
        run_cmd 0 as_user "$RIG_USER" "$prog" --dry-run $args
        assert_output --partial "# "
        ;;
      bro-proxy\ *)
        # the options parse (exit 2 and a usage error otherwise); without
        # sockets from systemd it stops right after
        args=${line#bro-proxy }
        [[ $args == *:* || $args == *--container* ]] || args="$args 127.0.0.1:1"
        # shellcheck disable=SC2086
        run_cmd 1 env -u LISTEN_FDS "$BRO_PROXY" $args
        assert_output --partial "no sockets inherited"
        ;;
      systemctl\ --user\ *|psql\ *)
        # run by the test above, as the Use section has them
        readme_use_cmds | grep -qxF -- "$(sed "s/$name/test-postgresql/g" <<<"$line")" ||
          fail "README command not run by any test: $line"
        ;;
      systemd-socket-activate\ *podman\ run*|curl\ http://127.0.0.1:8080/)
        # direct mode's try-it-by-hand, run by 320-direct's documented check
        grep -q '@test "the documented check: systemd-socket-activate + podman run' "$BATS_TEST_DIRNAME/320-direct.bats" ||
          fail "320-direct's documented check is gone; README shows: $line"
        ;;
      apt-get\ install\ *|dpkg\ *|lintian\ *|man\ *|systemd-analyze\ *)
        # the package route, run by 050-install / make check
        grep -rqF -- "${line%% *}" "$BATS_TEST_DIRNAME"/0[0-9][0-9]-*.bats "$BRO_REPO/Makefile" ||
          fail "README command not run by any test: $line"
        ;;
      *)
        fail "README command not run by any test: '$line' (add it to 060-readme.bats)"
        ;;
    esac
    n=$(( n + 1 ))
  done
  echo "# ran $n README commands" >&3
}
