"""Echo: answers each request with its own input, unchanged where possible.

The smallest real handler: module-level ``handle(data, context)`` in TorchServe's function form.
It imports nothing heavy, so its worker stays small.
"""


def handle(data, context):
    if data is None:  # TorchServe initialises function handlers with handle(None, context)
        return None
    replies = []
    for idx, row in enumerate(data):
        value = row.get("data", row.get("body"))
        if value is None and len(row) == 1:  # a form with one field: echo that field
            value = next(iter(row.values()))
        if value is None:  # several form fields: echo them as JSON text fields
            value = {
                k: v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v for k, v in row.items()
            }
        if isinstance(value, (bytes, bytearray, str)):
            content_type = context.get_request_header(idx, "Content-Type")
            if content_type:
                context.set_response_content_type(idx, content_type)
        replies.append(value)
    return replies
