"""bed/vm.py's sign of a lost guest: its kernel's hung-task report on the console."""

from bed import vm

# from nuc1's console in the CI run whose tier 2 hung for 50 min (qemu 7.2, TCG)
STALLED = """\
[   60.232334] powernow_k8: Power state transitions not supported
[  605.106599] INFO: task kworker/u2:1:24 blocked for more than 120 seconds.
[  605.111412]       Not tainted 6.1.0-50-amd64 #1 Debian 6.1.176-1
[  605.114786] Workqueue: writeback wb_workfn (flush-254:0)
[  605.126837] INFO: task jbd2/vda-8:137 blocked for more than 120 seconds.
"""
HEALTHY = """\
Debian GNU/Linux 12 nuc2 ttyS0
[  479.157548] bridge: filtering via arp/ip/ip6tables is no longer available by default.
[  688.129750] RPC: Registered named UNIX socket transport module.
[  900.312211] INFO: task python3:2211 blocked for more than 120 seconds.
[  900.312988] Call Trace:
[  900.313410]  rpc_wait_bit_killable+0x1d/0x80 [sunrpc]
"""


def test_a_guest_whose_disk_stopped_is_named_with_its_first_report(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "VM_DIR", tmp_path)
    (tmp_path / "nuc1.console").write_text(STALLED)
    (tmp_path / "nuc2.console").write_text(HEALTHY)
    assert vm.lost_guests(["nuc1", "nuc2", "nuc3"]) == {
        "nuc1": "[  605.126837] INFO: task jbd2/vda-8:137 blocked for more than 120 seconds."}


def test_a_task_waiting_on_a_hard_nfs_mount_is_no_lost_guest(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "VM_DIR", tmp_path)
    (tmp_path / "nuc2.console").write_text(HEALTHY)
    assert vm.lost_guests(["nuc2"]) == {}
