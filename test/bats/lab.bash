# shellcheck shell=bash
# lab.bash - the networking lab's section-4 example (640-lab.bats, and
# test/bench/lab.bats for make bench-lab): load helpers first, then lab.
# LAB_UNITS and PROXY_UNITS name the units of both accounts once
# lab_quadlets has written them.

LABAPP_IMAGE=${LABAPP_IMAGE:-localhost/bro-labapp:bats}
BRO_LABAPP=${BRO_LABAPP:-$BRO_REPO/bin/bro-labapp}
REDIS_IMAGE=${REDIS_IMAGE:-localhost/redis:7}
NGINX_IMAGE=${NGINX_IMAGE:-localhost/nginx:1.22}

# lab_port WANT: WANT (the lab's port) when nobody uses it, else a free one;
# reserved for this run like free_port's.
lab_port() {
  if [[ -z $(ss -Hltn "sport = :$1") ]] && mkdir "$BATS_RUN_TMPDIR/.port-$1" 2>/dev/null; then
    echo "$1"
  else
    free_port
  fi
}

# cross_systemctl ARGS...: crossuser's systemctl --user.
cross_systemctl() { as_user "$CROSS_USER" systemctl --user "$@"; }

# get USER PORT: an HTTP GET of 127.0.0.1:PORT as USER; the body, or curl's
# failure.
get() { as_user "$1" curl -sS --max-time 60 "http://127.0.0.1:$2/"; }

# show_states LABEL: the lab's units in both accounts (LAB_UNITS,
# PROXY_UNITS), printed to the test's output as the lab shows them: unit,
# load, active and sub state (list-units leaves out units not loaded).
show_states() {
  local u
  printf '# --- %s\n' "$1" >&3
  for u in "${LAB_UNITS[@]}"; do state_line "$RIG_USER" "$u"; done
  for u in "${PROXY_UNITS[@]}"; do state_line "$CROSS_USER" "$u"; done
}

state_line() {
  as_user "$1" systemctl --user show -p Id,LoadState,ActiveState,SubState "$2" |
    awk -F= -v u="$1" '{v[$1]=$2} END {printf "#   %-11s %-40s %-8s %-9s %s\n", u, v["Id"], v["LoadState"], v["ActiveState"], v["SubState"]}' >&3
}

# states USER UNIT...: "UNIT=ActiveState" for each.
states() {
  local user=$1 u out=(); shift
  for u in "$@"; do out+=("$u=$(unit_state -u "$user" "$u")"); done
  echo "${out[*]}"
}

# lab_quadlets WEB_PORT PROXY_PORT: the rig user's network, database, cache
# and web app, crossuser's nginx; both activators written and their sockets
# listening. Names: $BRO_TEST_PREFIX-{net,db,cache,web,proxy}.
lab_quadlets() {
  local web=$1 proxy=$2 p=$BRO_TEST_PREFIX ctx pgdata conf
  # the web app's image: only the static binary (test/labapp)
  [[ -x $BRO_LABAPP ]] || fail "no $BRO_LABAPP (make build)"
  ctx=$(user_tmpdir "$RIG_USER")/image
  install -d -o "$RIG_USER" "$ctx"
  install -o "$RIG_USER" -m 0755 "$BRO_LABAPP" "$ctx/bro-labapp"
  install -o "$RIG_USER" -m 0644 "$BRO_REPO/test/labapp/Containerfile" "$ctx/Containerfile"
  run_user_podman 0 build -q -t "$LABAPP_IMAGE" -f "$ctx/Containerfile" "$ctx"

  # the private network; the generator (Podman v5.6's) writes `network create
  # --ignore`, which Podman 4.3 does not know (see 440-network)
  write_quadlet "$RIG_USER" "$p-net.network" "[Network]"
  if [[ $("$PODMAN" --version | awk '{print $3}') == 4.* ]]; then
    as_user "$RIG_USER" mkdir -p "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user/$p-net-network.service.d"
    write_user_unit "$RIG_USER" "$p-net-network.service.d/podman4.conf" <<EOF
[Service]
ExecStart=
ExecStart=/bin/sh -c 'podman network exists systemd-$p-net || exec podman network create systemd-$p-net'
EOF
  fi
  pgdata=$(user_tmpdir "$RIG_USER")/pgdata
  as_user "$RIG_USER" mkdir -p "$pgdata"
  write_quadlet "$RIG_USER" "$p-db.container" <<EOF
[Unit]
Description=the lab's database ($p)

[Container]
Image=$PG_IMAGE
ContainerName=$p-db
Network=$p-net.network
Environment=POSTGRES_USER=lab POSTGRES_PASSWORD=lab POSTGRES_DB=lab POSTGRES_LISTEN_ADDRESSES=*
Volume=$pgdata:/var/lib/postgresql/data
Notify=true
EOF
  write_quadlet "$RIG_USER" "$p-cache.container" <<EOF
[Unit]
Description=the lab's cache ($p)

[Container]
Image=$REDIS_IMAGE
ContainerName=$p-cache
Network=$p-net.network
EOF
  write_quadlet "$RIG_USER" "$p-web.container" <<EOF
[Unit]
Description=the lab's web application ($p)
Requires=$p-db.service $p-cache.service
After=$p-db.service $p-cache.service

[Container]
Image=$LABAPP_IMAGE
ContainerName=$p-web
Network=$p-net.network
Exec=--listen :8080 --postgres postgres://lab:lab@$p-db:5432/lab --redis $p-cache:6379
Annotation=bro.activate=127.0.0.1:$web:8080
Annotation=bro.allow=$CROSS_USER
EOF
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$p-web"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$p-web-activator.socket"

  # crossuser: nginx from Debian, its upstream the web app through the host's
  # loopback (10.0.2.2 in a slirp4netns with allow_host_loopback)
  conf=$(user_tmpdir "$CROSS_USER")/nginx.conf
  cat >"$conf" <<EOF
worker_processes 1;
error_log stderr notice;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
  access_log /dev/stdout;
  upstream lab { server 10.0.2.2:$web; }
  server {
    listen 8443;
    location / { proxy_pass http://lab; proxy_read_timeout 90s; }
  }
}
EOF
  chmod 0644 "$conf"
  write_quadlet "$CROSS_USER" "$p-proxy.container" <<EOF
[Unit]
Description=the lab's reverse proxy ($p)

[Container]
Image=$NGINX_IMAGE
ContainerName=$p-proxy
Network=slirp4netns:allow_host_loopback=true
Volume=$conf:/etc/nginx/nginx.conf:ro
Annotation=bro.activate=127.0.0.1:$proxy:8443
EOF
  run_cmd 0 as_user "$CROSS_USER" "$BRO_ACTIVATE" "$p-proxy"
  run_cmd 0 cross_systemctl daemon-reload
  run_cmd 0 cross_systemctl enable --now "$p-proxy-activator.socket"
  wait_for_port "$web"
  wait_for_port "$proxy"
  LAB_UNITS=("$p-net-network.service" "$p-db.service" "$p-cache.service" "$p-web.service" "$p-web-activator.service" "$p-web-activator.socket")
  PROXY_UNITS=("$p-proxy.service" "$p-proxy-activator.service" "$p-proxy-activator.socket")
}

# lab_stop: everything stopped but the two sockets, as before the first
# request.
lab_stop() {
  local p=$BRO_TEST_PREFIX
  run_cmd 0 cross_systemctl stop "$p-proxy-activator.service" "$p-proxy.service"
  run_cmd 0 user_systemctl stop "$p-web-activator.service" "$p-web.service" "$p-db.service" "$p-cache.service" "$p-net-network.service"
}

