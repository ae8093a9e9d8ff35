#!/usr/bin/env bats
# 070-completion: the installed bash completion, loaded the way an
# interactive shell loads it (bash-completion's loader finds the script by
# command name), offers options and the user's own quadlet names; zsh and
# fish read their scripts without error.

load helpers

# complete_as USER WORDS...: what bash completion offers USER for WORDS (the
# last one is being completed), one candidate per line.
complete_as() {
  local user=$1; shift
  as_user "$user" bash -c '
    source /usr/share/bash-completion/bash_completion
    _completion_loader "$1"   # returns 124 ("retry") once it loaded a script
    spec=$(complete -p "$1") || { echo "no completion for $1" >&2; exit 1; }
    fn=${spec#*-F }; fn=${fn%% *}
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$fn" "$1" "${@: -1}" "${@: -2:1}"
    printf "%s\n" "${COMPREPLY[@]}"' bash "$@"
}

@test "bash: bro-activate completes its options and the user's quadlet names" {
  requires root bro
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX-web.container" "[Container]
Image=$BBOX_IMAGE"
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX-db.container" "[Container]
Image=$BBOX_IMAGE"
  run_cmd 0 complete_as "$RIG_USER" bro-activate "$BRO_TEST_PREFIX"
  assert_line "$BRO_TEST_PREFIX-web"
  assert_line "$BRO_TEST_PREFIX-db"
  run_cmd 0 complete_as "$RIG_USER" bro-activate --idle
  assert_output --idle-stop
  run_cmd 0 complete_as "$RIG_USER" bro-activate --proxy-protocol ""
  assert_output "v1
v2"
  run_cmd 0 complete_as "$RIG_USER" bro-activate st
  assert_output status
  run_cmd 0 complete_as "$RIG_USER" bro-activate status "$BRO_TEST_PREFIX-w"
  assert_output "$BRO_TEST_PREFIX-web"
  # another user's quadlets are not offered
  run_cmd 0 complete_as "$CROSS_USER" bro-activate "$BRO_TEST_PREFIX"
  assert_output ""
}

@test "bash: bro-activate-direct and bro-proxy complete their own options" {
  requires root bro
  run_cmd 0 complete_as "$RIG_USER" bro-activate-direct --
  assert_line --listen
  refute_line --idle-stop
  # direct mode has no proxy to check an allow list
  refute_line --allow
  run_cmd 0 complete_as "$RIG_USER" bro-activate --allo
  assert_output --allow
  run_cmd 0 complete_as "$RIG_USER" bro-proxy --allo
  assert_output --allow
  run_cmd 0 complete_as "$RIG_USER" bro-proxy --exit
  assert_output --exit-idle-time
  run_cmd 0 complete_as "$RIG_USER" bro-proxy --log-level ""
  assert_output "debug
info
warning
error"
}

@test "zsh and fish read the installed scripts" {
  requires root bro cmd:zsh cmd:fish
  local dir
  for dir in /usr/share/zsh/vendor-completions /usr/local/share/zsh/site-functions; do
    [[ -f $dir/_bro-activate ]] && break
  done
  [[ -f $dir/_bro-activate ]] || fail "no _bro-activate in the zsh completion directories"
  run_cmd 0 zsh -n "$dir/_bro-activate"
  run_cmd 0 zsh -n "$dir/_bro-proxy"
  # fish itself finds the script by command name
  # (XDG_DATA_DIRS as a desktop session sets it: fish reads /usr/local/share only then)
  run_cmd 0 as_user "$RIG_USER" env XDG_DATA_DIRS=/usr/local/share:/usr/share \
    fish -c 'complete -C "bro-activate --idle"; complete -C "bro-proxy --exit"'
  assert_line --regexp '^--idle-stop'
  assert_line --regexp '^--exit-idle-time'
}
