"""TorchServe's built-in handlers (``workers.handlers``), loaded with ``load_service``, driven with ``run_batch``.

Every model here is tiny and built by the test: a 10-class CNN on 3 x 224 x 224 images (eager state dict
and TorchScript), a linear layer for the base handler, an EmbeddingBag text classifier with a plain
dict vocabulary, a segmenter, a fake detector and a hand-encoded ONNX graph.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import struct
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from workers.handler_loader import LoadError, load_service  # noqa: E402
from workers.handler_runner import Service  # noqa: E402

HAS_PILLOW = importlib.util.find_spec("PIL") is not None
HAS_CAPTUM = importlib.util.find_spec("captum") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_pillow = pytest.mark.skipif(not HAS_PILLOW, reason="Pillow is not installed")
needs_captum = pytest.mark.skipif(not HAS_CAPTUM, reason="captum is not installed")


pytestmark = pytest.mark.usefixtures("isolated_imports")


# -- models and model directories -----------------------------------------------------------------

CNN_SOURCE = """
    import torch
    from torch import nn


    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))
"""

LINEAR_SOURCE = """
    from torch import nn


    class Affine(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)
"""

TEXT_SOURCE = """
    from torch import nn


    class BagClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.EmbeddingBag(16, 6)
            self.fc = nn.Linear(6, 3)

        def forward(self, text, offsets):
            return self.fc(self.embedding(text, offsets))
"""

SEGMENTER_SOURCE = """
    from torch import nn


    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(28)
            self.head = nn.Conv2d(3, 4, kernel_size=1)

        def forward(self, x):
            return {"out": self.head(self.pool(x))}
"""

DETECTOR_SOURCE = """
    import torch
    from torch import nn


    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, images):
            out = []
            for image in images:
                h, w = image.shape[-2:]
                boxes = torch.tensor([[0.0, 0.0, w / 2, h / 2], [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, w, h]])
                out.append({"boxes": boxes * self.scale, "labels": torch.tensor([1, 2, 3]),
                            "scores": torch.tensor([0.9, 0.2, 0.5])})
            return out
"""


def import_source(path: Path) -> Any:
    """Import a model file under a unique name, to build and save the model the handler will load."""
    spec = importlib.util.spec_from_file_location(f"_build_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eager_model_dir(model_dir: Path, source: str, class_name: str, seed: int = 0) -> Any:
    """``model.py`` + ``model.pth`` (a state dict), as ``torch-model-archiver --model-file`` packages them."""
    (model_dir / "model.py").write_text(textwrap.dedent(source))
    torch.manual_seed(seed)
    model = getattr(import_source(model_dir / "model.py"), class_name)().eval()
    torch.save(model.state_dict(), model_dir / "model.pth")
    return model


def manifest(handler: str, **model: str) -> dict[str, Any]:
    return {"model": {"modelName": "m", "handler": handler, **model}}


EAGER = {"serializedFile": "model.pth", "modelFile": "model.py"}


def load(model_dir: Path, handler: str, files: dict[str, str] | None = None, **overrides: Any) -> Service:
    message = {
        "model_name": "m",
        "model_version": "1.0",
        "model_dir": str(model_dir),
        "handler": handler,
        "runtime": "torchserve",
        "batch_size": 4,
        "gpu_id": None,
        "envelope": "",
        "limit_max_image_pixels": True,
        "decode_input_request": True,
        "manifest": manifest(handler, **(EAGER if files is None else files)),
        "model_yaml_config": {},
    }
    return load_service({**message, **overrides})


def job(
    job_id: int,
    body: Any,
    content_type: str = "application/octet-stream",
    name: str = "body",
    method: str = "predict",
    **headers: str,
):
    return {
        "id": job_id,
        "request_id": f"req-{job_id}",
        "headers": dict(headers),
        "inputs": [[name, content_type, body]],
        "method": method,
    }


def run(service: Service, jobs: list[dict[str, Any]]) -> list[Any]:
    """Run a batch; every response must be 200, and each body is returned JSON-decoded."""
    items = service.run_batch(jobs, lambda chunk: None)
    assert [item["status"] for item in items] == [200] * len(jobs), items
    return [json.loads(item["body"]) for item in items]


def handler_of(service: Service) -> Any:
    return service.entry_point.__self__


# -- images -----------------------------------------------------------------------------------------


def png(width: int = 320, height: int = 240, seed: int = 0, mode: str = "RGB") -> bytes:
    """A random-noise PNG, so that different seeds give different predictions."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = torch.randint(0, 256, (height, width, channels), generator=generator, dtype=torch.uint8).numpy()
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def expected_top5(model: Any, image_bytes: bytes, mapping: dict[str, str] | None = None) -> dict[str, float]:
    """What the image classifier must answer, computed here from the model and the documented pipeline."""
    from workers.handlers import image_ops

    tensor = image_ops.imagenet_classification_pipeline()(image_ops.open_image(image_bytes))
    with torch.no_grad():
        probs = torch.softmax(model(tensor.unsqueeze(0)), dim=1)[0]
    values, classes = torch.topk(probs, 5)
    return {(mapping or {}).get(str(c), str(c)): v for c, v in zip(classes.tolist(), values.tolist(), strict=True)}


def assert_same_scores(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert list(actual) == list(expected)
    assert actual == pytest.approx(expected, abs=1e-6)


# -- image classifier -------------------------------------------------------------------------------


@needs_pillow
def test_image_classifier_answers_top5_labels_for_png_bytes(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    image = png()
    [result] = run(load(tmp_path, "image_classifier"), [job(1, image, "image/png")])
    assert len(result) == 5
    assert all(isinstance(label, str) and label.isdigit() for label in result)
    assert list(result.values()) == sorted(result.values(), reverse=True)
    assert_same_scores(result, expected_top5(model, image))


@needs_pillow
def test_index_to_name_json_labels_the_classes(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    mapping = {str(i): f"class-{i}" for i in range(10)}
    (tmp_path / "index_to_name.json").write_text(json.dumps({k: ["n0000", v] for k, v in mapping.items()}))
    image = png(seed=3)
    [result] = run(load(tmp_path, "image_classifier"), [job(1, image, "image/png", name="data")])
    assert_same_scores(result, expected_top5(model, image, mapping))


@needs_pillow
def test_base64_text_input_equals_raw_bytes(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    image = png(seed=5)
    service = load(tmp_path, "image_classifier")
    encoded = base64.b64encode(image)
    as_bytes, as_text = run(service, [job(1, image, "image/png"), job(2, encoded, "text/plain")])
    assert as_text == as_bytes


@needs_pillow
def test_a_batch_of_three_images_answers_each_as_if_alone(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    images = [png(seed=s, width=200 + 40 * s) for s in range(3)]
    results = run(load(tmp_path, "image_classifier"), [job(i, img, "image/png") for i, img in enumerate(images)])
    for result, image in zip(results, images, strict=True):
        assert_same_scores(result, expected_top5(model, image))


@needs_pillow
def test_rgba_and_greyscale_images_are_classified_as_rgb(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    service = load(tmp_path, "image_classifier")
    results = run(service, [job(1, png(mode="RGBA"), "image/png"), job(2, png(mode="L"), "image/png")])
    assert [len(r) for r in results] == [5, 5]


@needs_pillow
def test_nested_list_input_is_the_tensor_itself(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    tensor = torch.rand(3, 16, 16)
    body = json.dumps(tensor.tolist()).encode()
    [result] = run(load(tmp_path, "image_classifier"), [job(1, body, "application/json")])
    with torch.no_grad():
        probs = torch.softmax(model(tensor.unsqueeze(0)), dim=1)[0]
    values, classes = torch.topk(probs, 5)
    assert_same_scores(result, {str(c): v for c, v in zip(classes.tolist(), values.tolist(), strict=True)})


@needs_pillow
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_model_without_model_file(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    torch.jit.script(model).save(str(tmp_path / "model.pt"))
    service = load(tmp_path, "image_classifier", {"serializedFile": "model.pt"})
    assert isinstance(handler_of(service).model, torch.jit.ScriptModule)
    image = png(seed=7)
    [result] = run(service, [job(1, image, "image/png")])
    assert_same_scores(result, expected_top5(model, image))


@needs_pillow
def test_both_builtin_spellings_resolve_to_our_classifier(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    for handler in ("image_classifier", "ts.torch_handler.image_classifier"):
        instance = handler_of(load(tmp_path, handler))
        assert type(instance).__module__ == "workers.handlers.image_classifier"
        from ts.torch_handler.image_classifier import ImageClassifier

        assert isinstance(instance, ImageClassifier)


@needs_pillow
def test_torchserve_style_subclass_loads_and_runs_unchanged(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    (tmp_path / "my_handler.py").write_text(
        textwrap.dedent(
            """
            from ts.torch_handler.image_classifier import ImageClassifier


            class MyClassifier(ImageClassifier):
                def initialize(self, context):
                    super().initialize(context)
                    self.set_max_result_classes(3)

                def postprocess(self, data):
                    return [{"top": row} for row in super().postprocess(data)]
            """
        )
    )
    image = png(seed=9)
    [result] = run(load(tmp_path, "my_handler.py"), [job(1, image, "image/png")])
    assert_same_scores(result["top"], dict(list(expected_top5(model, image).items())[:3]))


@needs_pillow
def test_unlimited_image_pixels_switches_off_pillows_guard(tmp_path: Path) -> None:
    from PIL import Image

    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    saved = Image.MAX_IMAGE_PIXELS
    try:
        load(tmp_path, "image_classifier", limit_max_image_pixels=True)
        assert saved == Image.MAX_IMAGE_PIXELS
        load(tmp_path, "image_classifier", limit_max_image_pixels=False)
        assert Image.MAX_IMAGE_PIXELS is None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def test_vision_handler_without_pillow_fails_the_load_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(LoadError, match="need Pillow: pip install Pillow"):
        load(tmp_path, "image_classifier")


@needs_pillow
def test_undecodable_image_fails_the_batch_with_503(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    [item] = load(tmp_path, "image_classifier").run_batch([job(1, b"not an image", "image/png")], lambda c: None)
    assert (item["status"], item["error"]) == (503, "Prediction failed")


# -- loading ----------------------------------------------------------------------------------------


def test_no_model_weights_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="No model weights could be loaded"):
        load(tmp_path, "base_handler", {})
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(LoadError, match="No model weights could be loaded"):
        load(tmp_path, "base_handler", {"serializedFile": "weights.bin"})


def test_missing_model_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="Missing the model.py file"):
        load(tmp_path, "base_handler", {"serializedFile": "model.pth", "modelFile": "model.py"})


def test_model_file_must_define_exactly_one_module_class(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    source = (tmp_path / "model.py").read_text()
    (tmp_path / "model.py").write_text(source + "\n\nclass Config:\n    pass\n\n\nclass Other(nn.Module):\n    pass\n")
    with pytest.raises(LoadError, match="Expected only one class as model definition"):
        load(tmp_path, "base_handler")


def test_helper_classes_that_are_not_modules_do_not_count(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    with open(tmp_path / "model.py", "a") as file:
        file.write("\n\nclass Config:\n    width = 3\n")
    assert run(load(tmp_path, "base_handler"), [job(1, b"[1.0, 2, 3]", "application/json")])


def test_pt2_compile_option_compiles_the_model(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    config = {"pt2": {"compile": {"enable": True, "backend": "eager"}}}
    service = load(tmp_path, "base_handler", model_yaml_config=config)
    assert type(handler_of(service).model).__name__ == "OptimizedModule"
    assert config == {"pt2": {"compile": {"enable": True, "backend": "eager"}}}  # not consumed in place
    [result] = run(service, [job(1, b"[1.0, 2, 3]", "application/json")])
    assert result == pytest.approx(model(torch.tensor([1.0, 2.0, 3.0])).tolist())


def test_pt2_compile_disabled_keeps_the_eager_model(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    config = {"pt2": {"compile": {"enable": False, "backend": "eager"}}}
    assert type(handler_of(load(tmp_path, "base_handler", model_yaml_config=config)).model).__name__ == "Affine"


# -- base handler -----------------------------------------------------------------------------------


def test_base_handler_stacks_json_inputs_and_returns_lists(tmp_path: Path) -> None:
    model = eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    service = load(tmp_path, "base_handler")
    results = run(service, [job(1, b"[1.0, 2, 3]", "application/json"), job(2, b"[0.5, 0, -1]")])
    with torch.no_grad():
        expected = model(torch.tensor([[1.0, 2, 3], [0.5, 0, -1]])).tolist()
    assert results == [pytest.approx(row) for row in expected]


def test_describe_header_returns_the_handlers_description(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    [item] = load(tmp_path, "base_handler").run_batch([job(1, b"", "text/plain", method="describe")], lambda c: None)
    assert (item["status"], item["body"]) == (200, b"null")  # TorchServe's describe_handle returns None


def test_profile_config_emits_per_stage_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    service = load(tmp_path, "base_handler", model_yaml_config={"handler": {"profile": True}})
    capsys.readouterr()
    run(service, [job(1, b"[1.0, 2, 3]", "application/json")])
    out = capsys.readouterr().out
    for stage in ("preprocess", "inference", "postprocess"):
        assert f"[METRICS]ts_handler_{stage}.ms:" in out
    assert "[METRICS]HandlerTime.ms:" in out


@needs_captum
def test_base_handler_explains_each_input_with_integrated_gradients(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    service = load(tmp_path, "base_handler")
    jobs = [job(1, b"[1.0, 2, 3]", "application/json", method="explain"), job(2, b"[3.0, 2, 1]", "application/json")]
    results = run(service, jobs)
    # For a linear model, IG from a zero baseline is exactly input * weight of the target class (0).
    weight = handler_of(service).model.fc.weight[0]
    for result, row in zip(results, ([1.0, 2, 3], [3.0, 2, 1]), strict=True):
        assert result == pytest.approx((torch.tensor(row) * weight).tolist(), abs=1e-4)


@needs_captum
def test_explain_target_comes_from_the_request(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    service = load(tmp_path, "base_handler")
    explain_job = job(1, b"[1.0, 2, 3]", "application/json", method="explain")
    explain_job["inputs"].append(["target", "text/plain", b"1"])
    [result] = run(service, [explain_job])
    weight = handler_of(service).model.fc.weight[1]
    assert result == pytest.approx((torch.tensor([1.0, 2, 3]) * weight).tolist(), abs=1e-4)


def test_explain_without_captum_answers_501(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eager_model_dir(tmp_path, LINEAR_SOURCE, "Affine")
    service = load(tmp_path, "base_handler")
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    [item] = service.run_batch([job(1, b"[1.0, 2, 3]", "application/json", method="explain")], lambda c: None)
    assert (item["status"], item["error"]) == (501, "Explanations need Captum: pip install captum")


@needs_pillow
@needs_captum
def test_image_classifier_explanation_is_one_3x224x224_map_per_image(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    service = load(tmp_path, "image_classifier")
    results = run(service, [job(1, png(seed=1), "image/png", method="explain"), job(2, png(seed=2), "image/png")])
    for attributions in results:
        tensor = torch.tensor(attributions)
        assert tensor.shape == (3, 224, 224)
        assert tensor.abs().sum() > 0


@needs_pillow
def test_image_explanation_without_captum_answers_501(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eager_model_dir(tmp_path, CNN_SOURCE, "TinyNet")
    service = load(tmp_path, "image_classifier")
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    [item] = service.run_batch([job(1, png(), "image/png", method="explain")], lambda c: None)
    assert item["status"] == 501
    [prediction] = run(service, [job(2, png(), "image/png")])  # predictions never needed captum
    assert len(prediction) == 5


# -- segmenter and detector -------------------------------------------------------------------------


@needs_pillow
def test_image_segmenter_answers_class_and_probability_per_pixel(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, SEGMENTER_SOURCE, "Segmenter")
    [result] = run(load(tmp_path, "image_segmenter"), [job(1, png(), "image/png")])
    tensor = torch.tensor(result)
    assert tensor.shape == (8, 8, 2)  # 224 / 28 per side, [class, probability] per pixel
    assert set(tensor[..., 0].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert bool(((tensor[..., 1] >= 0.25) & (tensor[..., 1] <= 1)).all())


@needs_pillow
def test_object_detector_keeps_detections_scoring_at_least_half(tmp_path: Path) -> None:
    eager_model_dir(tmp_path, DETECTOR_SOURCE, "Detector")
    (tmp_path / "index_to_name.json").write_text(json.dumps({"1": "cat", "2": "dog", "3": "bird"}))
    [result] = run(load(tmp_path, "object_detector"), [job(1, png(width=64, height=48), "image/png")])
    assert result == [
        {"cat": [0.0, 0.0, 32.0, 24.0], "score": pytest.approx(0.9)},
        {"bird": [2.0, 2.0, 64.0, 48.0], "score": 0.5},
    ]


# -- text classifier --------------------------------------------------------------------------------

VOCAB = {"<unk>": 0, "the": 1, "movie": 2, "was": 3, "not": 4, "good": 5, "great": 6, "the movie": 7, "was not": 8}


def text_model_dir(model_dir: Path, with_vocab: bool = True) -> Any:
    model = eager_model_dir(model_dir, TEXT_SOURCE, "BagClassifier")
    if with_vocab:
        torch.save(VOCAB, model_dir / "source_vocab.pt")
    (model_dir / "index_to_name.json").write_text(json.dumps({"0": "neg", "1": "neutral", "2": "pos"}))
    return model


def expected_text_scores(model: Any, ids: list[int]) -> dict[str, float]:
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor(ids), torch.tensor([0])), dim=1)[0].tolist()
    return dict(zip(["neg", "neutral", "pos"], probs, strict=True))


def test_text_classifier_scores_every_request_of_a_batch(tmp_path: Path) -> None:
    model = text_model_dir(tmp_path)
    service = load(tmp_path, "text_classifier")
    texts = ["<b>The movie</b> wasn't good!", "Great, great."]
    results = run(service, [job(i, text.encode(), "text/plain") for i, text in enumerate(texts)])
    # "the movie was not good" -> unigrams, then bigrams ("movie was", "not good" are unknown: <unk> = 0)
    first = [1, 2, 3, 4, 5, 7, 0, 8, 0]
    second = [6, 6, 0]  # "great", "great", "great great"
    assert results[0] == pytest.approx(expected_text_scores(model, first))
    assert results[1] == pytest.approx(expected_text_scores(model, second))


def test_text_classifier_needs_its_vocabulary(tmp_path: Path) -> None:
    text_model_dir(tmp_path, with_vocab=False)
    with pytest.raises(LoadError, match="Missing the source_vocab file"):
        load(tmp_path, "text_classifier")


@needs_captum
def test_text_classifier_explains_word_importances(tmp_path: Path) -> None:
    text_model_dir(tmp_path)
    service = load(tmp_path, "text_classifier")
    [result] = run(service, [job(1, b"the movie was great", "text/plain", method="explain")])
    assert result["words"] == ["the", "movie", "was", "great"]
    assert torch.tensor(result["importances"]).shape == (1, 6)  # the EmbeddingBag layer's output


# -- ONNX -------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    """One protobuf field: an int as a varint, text or bytes length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    payload = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape)))  # elem_type 1 = float


def onnx_matmul_model(weight: Any) -> bytes:
    """An ONNX ModelProto for ``y = x @ W`` (x: N x 3), encoded by hand so that only onnxruntime is needed."""
    rows, cols = weight.shape
    initializer = b"".join(_field(1, d) for d in (rows, cols)) + _field(2, 1) + _field(8, "W")
    initializer += _field(9, struct.pack(f"<{rows * cols}f", *weight.flatten().tolist()))
    node = _field(1, "x") + _field(1, "W") + _field(2, "y") + _field(4, "MatMul")
    graph = _field(1, node) + _field(2, "g") + _field(5, initializer)
    graph += _field(11, _tensor_info("x", ["N", rows])) + _field(12, _tensor_info("y", ["N", cols]))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(2, 13))  # IR version 8, opset 13


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed")
def test_onnx_model_runs_through_onnxruntime(tmp_path: Path) -> None:
    weight = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    (tmp_path / "model.onnx").write_bytes(onnx_matmul_model(weight))
    service = load(tmp_path, "base_handler", {"serializedFile": "model.onnx"})
    results = run(service, [job(1, b"[1.0, 2, 3]", "application/json"), job(2, b"[0.0, 0, 1]", "application/json")])
    assert results == [[16.0, 22.0], [4.0, 5.0]]


def test_onnx_model_without_onnxruntime_is_a_clear_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(LoadError, match="needs onnxruntime: pip install onnxruntime"):
        load(tmp_path, "base_handler", {"serializedFile": "model.onnx"})
