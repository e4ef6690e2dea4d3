"""A KServe model that sets its own response headers (``return_response_headers=True``), its content type among
them when the request asks for one."""

from kserve import Model


class HeadersModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name, return_response_headers=True)
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        response_headers["x-model"] = self.name
        if payload.get("content_type"):
            response_headers["content-type"] = payload["content_type"]
        return {"predictions": payload.get("instances")}
