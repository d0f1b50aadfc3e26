"""bed/util.py's process helpers."""

import subprocess
import time

from bed.util import pid_alive


def test_an_exited_child_not_yet_reaped_is_not_alive():
    child = subprocess.Popen(["sleep", "0.2"])
    assert pid_alive(child.pid)
    time.sleep(0.6)  # exited; a zombie until waited for
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
