#!/usr/bin/env bash
# Build the lab's base image offline: a Debian unstable root made by debootstrap (its
# built-in default mirror), imported into podman with systemd as PID 1.
# The tag carries a hash of this recipe, so the image is rebuilt only when the recipe
# changes; `sipwave-lab:latest` always names the current one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
. "$here/../env.sh"

suite="${SIPWAVE_LAB_SUITE:-sid}"
packages="python3,python3-apt,systemd,systemd-sysv,procps,iproute2"
recipe_hash="$( (cd "$here" && find build.sh rootfs -type f | sort | xargs cat; echo "$suite $packages") | sha256sum | cut -c1-12)"
image="localhost/sipwave-lab:$recipe_hash"

if podman image exists "$image"; then
  podman tag "$image" localhost/sipwave-lab:latest
  echo "lab image $image is current"
  exit 0
fi

workdir="$(mktemp -d /var/tmp/sipwave-rootfs.XXXXXX)"
trap 'rm -rf "$workdir"' EXIT
echo "building lab image $image (debootstrap $suite)"
# The snapshot mirror's Release files may be past their Valid-Until date; the apt config
# in rootfs/ tells apt inside the image to accept them, debootstrap itself does not check.
debootstrap --variant=minbase --include="$packages" "$suite" "$workdir/root" >"$workdir/debootstrap.log" 2>&1 \
  || { tail -n 30 "$workdir/debootstrap.log" >&2; exit 1; }
cp -a "$here/rootfs/." "$workdir/root/"
# No getty or other consoles in a container; the lab's services are started by the roles.
chroot "$workdir/root" systemctl mask getty.target console-getty.service systemd-logind.service \
  systemd-resolved.service >/dev/null 2>&1 || true
chroot "$workdir/root" apt-get clean
tar -C "$workdir/root" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL io.sipwave.recipe=$recipe_hash" - "$image" >/dev/null
podman tag "$image" localhost/sipwave-lab:latest
echo "lab image $image built"
