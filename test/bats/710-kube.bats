#!/usr/bin/env bats
# 710-kube: pods. A .kube quadlet (podman kube play) whose pod YAML carries
# bro.activate in metadata.annotations: Podman passes the pod's annotations
# to its containers, the hook records them with NAME.service as their unit,
# and the activator (generator or bro-activate) follows that unit, so the
# first connection starts the .kube unit. On Podman 5 (P5_USER) and on
# Podman 4.3 (P4_USER). And a .container in a Podman 5 .pod quadlet.

# bats sources this file again for every test, in processes that inherit
# the environment: when RIG_USER is exported (CI exports it), the line below
# would make the next test's P4_USER P5_USER. The first value is kept.
export P4_USER=${P4_USER:-${RIG_USER:-lingeruser}}
RIG_USER=${P5_USER:-p5user}

load helpers

setup() {
  bro_setup
  requires root user_manager bro
}

# kube_quadlet USER NAME PORT [ANNOTATION-LINES...]: NAME.kube (Network=none)
# and NAME.yaml for USER: pod NAME-pod, container web (busybox httpd on
# 127.0.0.1:8080), pod annotation bro.activate=127.0.0.1:PORT:8080 and each
# further "key: value" line. Sets KUBE_CTR (the container's Podman name).
kube_quadlet() {
  local user=$1 name=$2 port=$3 extra=; shift 3
  for l in "$@"; do extra+=$'\n'"    $l"; done
  write_quadlet "$user" "$name.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name-pod
  annotations:
    bro.activate: "127.0.0.1:$port:8080"$extra
spec:
  containers:
  - name: web
    image: $BBOX_IMAGE
    command: ["/bin/sh", "-c", "mkdir -p /www && echo kube-ok >/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"]
    # the image (podman import) has no PATH: Podman 5's kube play sets a
    # default, Podman 4.3's does not
    env:
    - name: PATH
      value: /bin
EOF
  write_quadlet "$user" "$name.kube" "[Kube]
Yaml=$name.yaml
Network=none"
  KUBE_CTR=$name-pod-web
}

# record_of USER CONTAINER: the hook's record of USER's container, as
# "name unit".
record_of() {
  local uid id
  uid=$(id -u "$1")
  id=$(as_user "$1" "$PODMAN" inspect -f '{{.Id}}' "$2" 2>/dev/null | tail -1)
  jq -r '[.name, .unit] | join(" ")' "/run/user/$uid/bro/$id.json"
}

@test "podman 5 .kube (generator route): the pod annotation gives NAME.kube an activator; the first connection starts the unit, again after a stop" {
  local name=$BRO_TEST_PREFIX-k port
  port=$(free_port)
  kube_quadlet "$RIG_USER" "$name" "$port"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$name-activator.socket"
  wait_for_port "$port"
  run_cmd 0 unit_state "$name.service"
  assert_output inactive
  run_cmd 0 user_systemctl show -p ExecStart --value "$name-activator.service"
  assert_output --partial "--container $name.service --start-unit $name.service"

  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output kube-ok
  run_cmd 0 unit_state "$name.service"
  assert_output active
  run_cmd 0 record_of "$RIG_USER" "$KUBE_CTR"
  assert_output "$KUBE_CTR $name.service"

  # the pod goes (podman kube down), the socket stays, bro-proxy starts it again
  run_cmd 0 user_systemctl stop "$name.service"
  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output kube-ok
}

@test "podman 4.3 .kube (bro-activate NAME): the same pod YAML, served through Podman 4.3's kube play" {
  local name=$BRO_TEST_PREFIX-k4 port
  port=$(free_port)
  kube_quadlet "$P4_USER" "$name" "$port"
  run_cmd 0 as_user "$P4_USER" "$BRO_ACTIVATE" "$name"
  run_cmd 0 as_user "$P4_USER" systemctl --user daemon-reload
  run_cmd 0 as_user "$P4_USER" systemctl --user enable --now "$name-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output kube-ok
  run_cmd 0 record_of "$P4_USER" "$KUBE_CTR"
  assert_output "$KUBE_CTR $name.service"
  run_cmd 0 as_user "$P4_USER" "$BRO_ACTIVATE" --remove "$name"
}

@test "podman 5 .kube with bro.idle-stop: the unit stops after the idle time and starts for the next client" {
  local name=$BRO_TEST_PREFIX-ki port
  port=$(free_port)
  kube_quadlet "$RIG_USER" "$name" "$port" 'bro.idle-stop: "2s"'
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$name-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output kube-ok
  wait_unit_state "$name-activator.service" inactive 30
  wait_unit_state "$name.service" inactive 30
  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output kube-ok
}

@test ".kube refusals: direct and handoff modes, a pod without the annotation, two annotated pods" {
  local name=$BRO_TEST_PREFIX-kr home
  home=$(getent passwd "$RIG_USER" | cut -d: -f6)
  kube_quadlet "$RIG_USER" "$name" 18098 'bro.mode: handoff'
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$name"
  assert_output --partial "$name.kube: bro.mode=handoff: a .kube quadlet is served in proxy mode only"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" "$name"
  assert_output --partial "direct mode is not supported for a .kube quadlet"
  sed -i '/bro\.activate\|bro\.mode\|annotations:/d' "$home/.config/containers/systemd/$name.yaml"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --listen 127.0.0.1:18098 --target 8080 "$name"
  assert_output --partial "has no bro.activate annotation; add it to the pod's metadata.annotations"
  printf -- '---\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n    bro.activate: "1"\n---\nkind: Pod\nmetadata:\n  name: b\n  annotations:\n    bro.activate: "2"\n' |
    as_user "$RIG_USER" tee -a "$home/.config/containers/systemd/$name.yaml" >/dev/null
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$name"
  assert_output --partial 'pods "a" and "b" both have bro.* annotations; want one per .kube quadlet'
  run_cmd 0 ls "$home/.config/systemd/user"
  refute_output --partial "$name"
}

@test "podman 5 .pod quadlet: a .container in the pod, with Annotation=bro.activate, is served in the pod's network namespace" {
  local pod=$BRO_TEST_PREFIX-pod name=$BRO_TEST_PREFIX-web port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$pod.pod" "[Pod]
PodName=$pod
Network=none"
  write_quadlet "$RIG_USER" "$name.container" "[Container]
Image=$BBOX_IMAGE
ContainerName=$name
Pod=$pod.pod
Annotation=bro.activate=127.0.0.1:$port:8080
Exec=sh -c 'mkdir -p /www && echo pod-ok >/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www'"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$name-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS --max-time 60 "http://127.0.0.1:$port/"
  assert_output pod-ok
  run_cmd 0 unit_state "$pod-pod.service"
  assert_output active
  run_cmd 0 record_of "$RIG_USER" "$name"
  assert_output "$name $name.service"
}
