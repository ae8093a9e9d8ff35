#!/usr/bin/env bats
# 440-network: the lab's sections 2-3: containers on a network quadlet reach
# each other by name, while one of them is socket-activated from the host.
#
# On this rig the quadlet generator (Podman v5.6) writes
# `podman network create --ignore NAME`, and Podman 4.3 answers
# "Error: unknown flag: --ignore"; a drop-in gives the network service a
# 4.3-compatible ExecStart. With a Podman that matches its quadlet, the
# drop-in is not needed. Rootless custom networks run here (netavark and
# aardvark-dns inside the user's rootless network namespace).

load helpers

setup() {
  bro_setup
  requires root user_manager bro
}

@test "network quadlet: containers reach each other by name while one is socket-activated from the host" {
  local net=$BRO_TEST_PREFIX-net port out
  port=$(free_port)
  out=$(user_tmpdir "$RIG_USER")
  write_quadlet "$RIG_USER" "$net.network" <<EOF
[Network]
EOF
  local podman43
  podman43=$("$PODMAN" --version | awk '{print $3}')
  if [[ $podman43 == 4.* ]]; then
    as_user "$RIG_USER" mkdir -p "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user/$net-network.service.d"
    write_user_unit "$RIG_USER" "$net-network.service.d/podman4.conf" <<EOF
[Service]
ExecStart=
ExecStart=/bin/sh -c 'podman network exists systemd-$net || exec podman network create systemd-$net'
EOF
  fi
  # web: served on the network and, on demand, from the host
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX-web.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-web
Network=$net.network
Annotation=bro.activate=127.0.0.1:$port:8080
Exec=sh -c 'mkdir -p /w; echo served-by-web > /w/index.html; trap "exit 0" TERM; httpd -f -p 8080 -h /w & wait'
EOF
  # client: on the same network, fetches web by its name
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX-client.container" <<EOF
[Unit]
Requires=$BRO_TEST_PREFIX-web.service
After=$BRO_TEST_PREFIX-web.service

[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-client
Network=$net.network
Volume=$out:/out
Exec=sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO /out/got http://$BRO_TEST_PREFIX-web:8080/ && break; sleep 0.5; done; trap "exit 0" TERM; sleep 300 & wait'
EOF
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$BRO_TEST_PREFIX-web"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$BRO_TEST_PREFIX-web-activator.socket"
  wait_for_port "$port"
  # from the host: the first connection starts web through bro-proxy
  run_cmd 0 curl -sS --max-time 30 --retry 0 "http://127.0.0.1:$port/"
  assert_output served-by-web
  # on the network: client reaches web by name
  run_cmd 0 user_systemctl start "$BRO_TEST_PREFIX-client.service"
  retry 20 0.5 test -s "$out/got"
  run_cmd 0 cat "$out/got"
  assert_output served-by-web
}
