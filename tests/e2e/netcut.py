"""Cut one UDP flow for real with nftables (PITFALLS: no netem here; nft drop rules work)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def udp_port_cut(port: int) -> Iterator[None]:
    """Drop every UDP packet from or to ``port`` on this machine while the block runs."""
    if shutil.which("nft") is None:
        pytest.fail("nft (nftables) is needed to cut a connection for real")
    table = f"jinshi_cut_{uuid.uuid4().hex[:8]}"
    rules = f"""
table inet {table} {{
  chain out {{ type filter hook output priority 0; udp sport {port} drop; udp dport {port} drop; }}
  chain in {{ type filter hook input priority 0; udp sport {port} drop; udp dport {port} drop; }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)
