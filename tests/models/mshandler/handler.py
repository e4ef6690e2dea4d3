"""A TorchServe function handler for MindSpore-style methods: ``data`` rows hold numpy arrays by input name, the
method is the ``url_path`` request header, and each answer is a JSON object of outputs."""


def handle(data, context):
    if data is None:
        return None
    answers = []
    for idx, row in enumerate(data):
        method = context.get_request_header(idx, "url_path")
        x = row["x"]
        if method == "negative_fails" and (x < 0).any():
            raise ValueError("negative input")
        answers.append({"y": (x * 2).tolist(), "dtype": str(x.dtype), "method": method})
    return answers
