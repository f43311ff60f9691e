"""A peer a test starts ends with that test: one killed on its timeout runs no clean-up, and a
peer left behind on a fixed address (port 25 or 443 of a 127.0.N.x) would fail every later run."""
import os
import threading
import time


def exit_with_parent():
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
