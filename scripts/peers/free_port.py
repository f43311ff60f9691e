#!/usr/bin/env python3
"""Prints N ports (default 1) free on 127.0.0.1 for a peer that binds them a moment later.

They are drawn at random below the kernel's ephemeral range: a port the kernel hands out for a
bind to port 0 can be handed to another test's listener before the peer gets to bind it, and
these never are. Each is checked free for TCP and UDP (DNS peers bind both).
Usage: free_port.py [N]
"""
import random
import socket
import sys

LOWEST = 10000


def free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def ports(n):
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    found = []
    if ephemeral - LOWEST >= 1000:
        for _ in range(1000):
            if len(found) == n:
                break
            p = random.randrange(LOWEST, ephemeral)
            if p not in found and free(p):
                found.append(p)
    while len(found) < n:  # no room below the range: the kernel's choice
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        found.append(s.getsockname()[1])
        s.close()
    return found


if __name__ == "__main__":
    print(*ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
