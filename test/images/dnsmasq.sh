#!/usr/bin/env bash
# dnsmasq.sh [PODMAN...] - build localhost/bro-dnsmasq:latest, a real DNS
# server image made from Debian's dnsmasq-base package as installed on this
# machine: the binary, the shared libraries it links and the loader, nothing
# else. Offline (no registry), a second or two. Usage:
#   test/images/dnsmasq.sh                      root's podman
#   test/images/dnsmasq.sh runuser -u U -- podman   another user's
set -euo pipefail
# PODMAN may be another user's (runuser): run it from a directory every user
# may enter, not the caller's (a clone in /root is 0700)
cd /tmp
IMAGE=${IMAGE:-localhost/bro-dnsmasq:latest}
podman=("$@")
(( ${#podman[@]} )) || podman=(podman)
bin=/usr/sbin/dnsmasq
[[ -x $bin ]] || { echo "dnsmasq.sh: $bin missing (apt-get install dnsmasq-base)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/sbin" "$root/etc" "$root/tmp"
cp "$bin" "$root/usr/sbin/"
for lib in $(ldd "$bin" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  [[ -f $lib ]] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod -R a+rX "$root"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$root.tar" .
chmod 644 "$root.tar"
"${podman[@]}" import -q --change 'ENTRYPOINT ["/usr/sbin/dnsmasq"]' "$root.tar" "$IMAGE" >/dev/null
rm -f "$root.tar"
echo "$IMAGE"
