"""Run a media worker as its own process (scaled mode, with a Redis channel layer)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from live.worker import MediaWorkerRuntime


class Command(BaseCommand):
    help = "Run a media worker (aiortc) that serves the lessons pinned to it."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        runtime = MediaWorkerRuntime()
        task = asyncio.create_task(runtime.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        self.stdout.write(f"media worker {runtime.worker_id} starting")
        try:
            await task
        except asyncio.CancelledError:
            pass
