"""The BLE VM harness: a cached Debian guest in QEMU where the gateway's real bleak transport talks
to BlueZ, and BlueZ talks through ``hci_vhci`` to bumble virtual health devices.

``image`` builds and caches the guest, ``vm`` boots it, ``guest/`` runs inside it. See
docs/ble-vm.md.
"""
