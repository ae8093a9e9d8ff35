#!/usr/bin/env bats
# 520-security: a second unprivileged user (CROSS_USER) against the first
# (RIG_USER): no way into the first user's namespaces through bro-proxy or
# its helper, no way to plant or alter the first user's records; and no
# installed binary carries setuid, setgid or file capabilities.
# (200-proxy covers --pid of the container and --container by record.)

load helpers


setup() {
  bro_setup
  requires root bro
}

proxy_log() { cat "$BATS_TEST_TMPDIR"/bg.*.log; }

# rig_container: a container of RIG_USER with its own netns; sets CPID.
rig_container() {
  run_user_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 \
    "$BBOX_IMAGE" httpd -f -p 127.0.0.1:8080
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX"
  CPID=$output
}

# cross_proxy PORT ARGS...: CROSS_USER's bro-proxy behind a socket on PORT.
cross_proxy() {
  local port=$1; shift
  run_bg as_user "$CROSS_USER" "$SOCKET_ACTIVATE" -l "127.0.0.1:$port" "$BRO_PROXY" "$@" >/dev/null
  wait_for_port "$port"
}

@test "another user's bro-proxy: --netns /proc/PID/ns/net of the user's container is refused" {
  rig_container
  local front; front=$(free_port)
  cross_proxy "$front" --netns "/proc/$CPID/ns/net" 127.0.0.1:8080
  run_cmd 0 "$BROLOAD" probe "127.0.0.1:$front" --timeout 10s
  assert_output --regexp '^ended: (eof|reset) after 0 bytes$'
  run_cmd 0 proxy_log
  assert_output --regexp "(open namespace /proc/$CPID/ns/net: .*permission denied|belongs to a user namespace of uid)"
  refute_output --partial "backend ready"
}

@test "another user's bro-proxy: --pid of the user's rootless pause process is refused" {
  rig_container # the user's rootless Podman is up, with its pause process
  local uid pause; uid=$(id -u "$RIG_USER")
  pause=$(cat "/run/user/$uid/libpod/tmp/pause.pid")
  [[ -n $pause ]] && kill -0 "$pause" || fail "no pause process for $RIG_USER"
  local front; front=$(free_port)
  cross_proxy "$front" --pid "$pause" 127.0.0.1:8080
  run_cmd 0 "$BROLOAD" probe "127.0.0.1:$front" --timeout 10s
  assert_output --regexp '^ended: (eof|reset) after 0 bytes$'
  run_cmd 0 proxy_log
  assert_output --regexp "--pid $pause: .*(permission denied|belongs to a user namespace of uid $uid)"
  refute_output --partial "backend ready"
}

@test "another user cannot use the helper (_BRO_NSENTER) to join the user's namespaces" {
  rig_container
  local mode ver; ver=$("$BRO_PROXY" --version)
  # with the namespace files on the helper's fixed fds, as package ns does
  for mode in net user,net user,net,mnt; do
    run_cmd '!' as_user "$CROSS_USER" bash -c \
      'exec 4<"/proc/$1/ns/net" 5<"/proc/$1/ns/user" 6<"/proc/$1/ns/mnt"; _BRO_NSENTER=$2 exec "$3" --version' \
      bash "$CPID" "$mode" "$BRO_PROXY"
    assert_output --regexp '(Permission denied|bro-proxy namespace helper: join)'
    refute_output --partial "$ver" # never reached main
  done
  # the user namespace of the user's pause process, opened by the user
  # (fds inherited through a root shell): setns is still refused
  local pause uid; uid=$(id -u "$RIG_USER")
  pause=$(cat "/run/user/$uid/libpod/tmp/pause.pid")
  run_cmd '!' bash -c 'exec 4<"/proc/$1/ns/net" 5<"/proc/$1/ns/user"
    exec runuser -u "$2" -- env -i _BRO_NSENTER=user,net "$3" --version' bash "$pause" "$CROSS_USER" "$BRO_PROXY"
  assert_output --partial 'bro-proxy namespace helper: join user namespace: Operation not permitted'
  # an unknown mode is refused too
  run_cmd 126 as_user "$CROSS_USER" env _BRO_NSENTER=pid "$BRO_PROXY" --version
  assert_output --partial 'unknown _BRO_NSENTER mode'
}

@test "another user cannot plant or alter records in the user's state directory" {
  rig_container
  local uid dir; uid=$(id -u "$RIG_USER"); dir=/run/user/$uid/bro
  run_user_podman 0 inspect -f '{{.Id}}' "$BRO_TEST_PREFIX"
  local id=$output
  [[ -f $dir/$id.json ]] || fail "no record $dir/$id.json"
  run_cmd 0 stat -c '%U %a' "$dir" "$dir/$id.json"
  assert_output "$RIG_USER 700
$RIG_USER 600"
  run_cmd '!' as_user "$CROSS_USER" touch "$dir/planted.json"
  assert_output --partial 'Permission denied'
  run_cmd '!' as_user "$CROSS_USER" sh -c "echo '{}' > $dir/$id.json"
  run_cmd '!' as_user "$CROSS_USER" cat "$dir/$id.json"
  run_cmd '!' as_user "$CROSS_USER" mv "$dir" "/tmp/$BRO_TEST_PREFIX"
  [[ -f $dir/$id.json && ! -e $dir/planted.json ]] || fail "the state directory changed"
}

@test "a record owned by another uid in the user's state directory is ignored" {
  rig_container
  local uid cuid; uid=$(id -u "$RIG_USER"); cuid=$(id -u "$CROSS_USER")
  run_user_podman 0 inspect -f '{{.Id}}' "$BRO_TEST_PREFIX"
  local id=$output
  # a copy of the user's state directory, with the real record's twin
  # planted (by root) under another name and owned by the second user
  local state; state=$(user_tmpdir "$RIG_USER")/state
  install -d -o "$RIG_USER" -m 0700 "$state"
  local fake=ffff${id:4}
  jq --arg id "$fake" --arg n "$BRO_TEST_PREFIX-planted" '.id = $id | .name = $n' \
    "/run/user/$uid/bro/$id.json" >"$state/$fake.json"
  # readable, so that the ownership check is what refuses it
  chown "$CROSS_USER" "$state/$fake.json"; chmod 644 "$state/$fake.json"
  local front; front=$(free_port)
  run_bg as_user "$RIG_USER" "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" -E "BRO_STATE_DIR=$state" \
    "$BRO_PROXY" --container "$BRO_TEST_PREFIX-planted" --container-timeout 2s 127.0.0.1:8080 >/dev/null
  wait_for_port "$front"
  run_cmd 0 "$BROLOAD" probe "127.0.0.1:$front" --timeout 15s
  assert_output --regexp '^ended: (eof|reset) after 0 bytes$'
  run_cmd 0 proxy_log
  assert_output --partial "owned by uid $cuid"
  refute_output --partial "container found; entered its network namespace"
}

# check_tree DIR...: nothing under DIR is setuid/setgid or has file
# capabilities.
check_tree() {
  run_cmd 0 find "$@" -perm /6000
  assert_output ""
  run_cmd 0 getcap -r "$@"
  assert_output ""
}

@test "no installed binary is setuid, setgid or has file capabilities (DESTDIR tree and the real install)" {
  requires cmd:getcap
  local dest=$BATS_TEST_TMPDIR/dest
  run_cmd 0 make -C "$BRO_REPO" --no-print-directory install DESTDIR="$dest" OUT="$BATS_TEST_TMPDIR/out"
  run_cmd 0 find "$dest" -type f
  assert_line --partial /usr/local/bin/bro-proxy
  assert_line --partial /usr/local/libexec/brothaman/bro-hook
  check_tree "$dest"
  # the real install: the files `make install` put there
  check_tree "$BRO_PROXY" "$BRO_ACTIVATE" "$BRO_HOOK"
  run_cmd 0 stat -c '%a %U' "$BRO_PROXY" "$BRO_ACTIVATE" "$BRO_HOOK"
  assert_output "755 root
755 root
755 root"
}
