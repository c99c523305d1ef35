#!/bin/sh
# Run by the image's /sbin/hv-init (PID 1) from the read-only 9p share /mnt/hv; output goes to
# /mnt/out/init.log on the host. No systemd and no udev: load what the harness needs by hand.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
t0=$(cut -d' ' -f1 /proc/uptime)
modprobe virtio_net
modprobe hci_vhci
ip link set lo up
i=0
while [ "$(ls /sys/class/net | grep -v '^lo$')" = "" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
nic=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$nic" up
# QEMU user networking: 10.0.2.2 is the host's loopback, where the test's Mosquitto listens.
# No default route on purpose: the guest can reach nothing but QEMU's 10.0.2.0/24.
ip addr add 10.0.2.15/24 dev "$nic"
mkdir -p /run/dbus /var/lib/bluetooth
dbus-daemon --system --fork
/usr/libexec/bluetooth/bluetoothd -n > /mnt/out/bluetoothd.log 2>&1 &
btmon -w /mnt/out/btmon.snoop > /dev/null 2>&1 &
echo "guest: services up at $(cut -d' ' -f1 /proc/uptime) s (init at $t0 s)"
cd /tmp
PYTHONPATH=/mnt/hv/src:/mnt/hv PYTHONDONTWRITEBYTECODE=1 \
  /opt/hv/bin/python -m harness.guest.runner /mnt/hv/run.json /mnt/out > /mnt/out/runner.log 2>&1
echo "guest: runner exited $? at $(cut -d' ' -f1 /proc/uptime) s"
