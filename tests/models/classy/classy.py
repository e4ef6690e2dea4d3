"""A class handler: one class with initialize and handle; the helper import is not a second class."""

from collections import OrderedDict


class Doubler:
    def initialize(self, context):
        self.factor = 2
        self.name = context.model_name
        self.seen = OrderedDict()

    def handle(self, data, context):
        out = []
        for row in data:
            value = row.get("body")
            out.append(
                {"model": self.name, "doubled": value * self.factor if isinstance(value, (int, float)) else None}
            )
        return out
