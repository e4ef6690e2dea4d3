"""A KServe model whose predict answers an async generator: the server streams it, one chunk per piece."""

import asyncio

from kserve import Model


class StreamModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        count = int(payload.get("count", 3))

        async def pieces():
            for index in range(count):
                yield f"piece {index}\n".encode()
                await asyncio.sleep(0.02)

        return pieces()
