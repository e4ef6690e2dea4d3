"""Celsius to Fahrenheit with a real PyTorch linear layer whose weights live in ``weights.json``.

TorchServe's class form: ``initialize(context)`` builds the model once; ``handle`` runs a whole
batch through it in one forward pass. Input: a JSON number or list of numbers per request.
"""

import json
from pathlib import Path

import torch
from ts.utils.util import PredictionException


class LinearHandler:
    def initialize(self, context):
        model_dir = Path(context.system_properties["model_dir"])
        weights = json.loads((model_dir / "weights.json").read_text())
        self.model = torch.nn.Linear(1, 1)
        with torch.no_grad():
            self.model.weight.copy_(torch.tensor(weights["weight"]))
            self.model.bias.copy_(torch.tensor(weights["bias"]))
        self.model.eval()

    def _values(self, row):
        value = row.get("data", row.get("body"))
        if isinstance(value, (bytes, bytearray, str)):
            try:
                value = json.loads(value)
            except ValueError:
                raise PredictionException("Input must be a JSON number or list of numbers", 400) from None
        if isinstance(value, dict):
            value = value.get("celsius", value.get("instances"))
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise PredictionException("Input must be a JSON number or list of numbers", 400)
        return values

    def handle(self, data, context):
        rows = [self._values(row) for row in data]
        flat = torch.tensor([v for row in rows for v in row], dtype=torch.float32).unsqueeze(1)
        with torch.no_grad():
            out = self.model(flat).squeeze(1).tolist()
        replies, start = [], 0
        for row in rows:
            replies.append([round(v, 4) for v in out[start : start + len(row)]])
            start += len(row)
        return replies
