"""``ts.torch_handler.unit_tests``: the helpers TorchServe's handler unit tests import."""
