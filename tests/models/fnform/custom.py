"""The ``file.py:fn`` form: the entry point is ``shout``, not ``handle``."""


def shout(data, context):
    if data is None:
        return None
    return [str(row.get("body", "")).upper() for row in data]
