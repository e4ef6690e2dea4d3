"""A handler whose initialize never finishes in time: for startupTimeout tests."""

import time


class SlowLoad:
    def initialize(self, context):
        time.sleep(3600)

    def handle(self, data, context):
        return ["never" for _ in data]
