"""What the model types that cannot run here would receive: lm-eval builds the ted requests itself
(TaskManager, build_all_requests) with the metadata its CLI passes (the model arguments merged in),
and the OpenAI payload comes from lm-eval's own OpenAIChatCompletion. vLLM does not install here;
`vllm` and `vllm-vlm` take the same `pretrained=` arguments and contexts as `hf` / `hf-multimodal`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ted.library import Library
from tests.fixtures import benchmarks as fx
from tests.support import CHECKOUT

pytestmark = pytest.mark.integration

REPO = CHECKOUT


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    root = tmp_path_factory.mktemp("requests")
    lib = Library(name="requests")
    lib.add("Box the final answer.", step=1)
    data = {"ted_mathvision": str(fx.write_mathvision(root / "mv")), "ted_aime": str(fx.write_aime25(root / "aime"))}
    return {"library": str(lib.save(root / "lib.json")), **data}, lib.render()


def requests(task: str, setup: tuple[dict[str, str], str], model_args: dict[str, str], chat: bool) -> list[Any]:
    from lm_eval.tasks import TaskManager

    paths, _ = setup
    metadata = model_args | {"library": paths["library"], "data_files": paths[task]}  # as lm-eval's CLI merges them
    loaded = TaskManager(include_path=str(REPO / "eval_tasks"), metadata=metadata).load([task])["tasks"][task]
    template = (lambda messages, **_: json.dumps(messages)) if chat else None
    loaded.build_all_requests(limit=1, rank=0, world_size=1, apply_chat_template=chat, chat_template=template)
    return loaded.instances


def test_openai_chat_completions_payload(setup: tuple[dict[str, str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.models.api_models import create_image_prompt
    from lm_eval.models.openai_completions import OpenAIChatCompletion

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    _, block = setup
    (instance,) = requests("ted_mathvision", setup, {"model": "gpt-4o"}, chat=True)
    chat = create_image_prompt(instance.args[2]["visual"], json.loads(instance.args[0]))
    payload = OpenAIChatCompletion(model="gpt-4o")._create_payload(chat, generate=True, gen_kwargs=dict(instance.args[1]))
    system, user = payload["messages"]
    assert system == {"role": "system", "content": block + "\n\n"}
    image, text = user["content"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text["text"].startswith('Please solve the problem step by step and put your answer in one "\\boxed{}".')
    assert "<image" not in text["text"]  # neither lm-eval's placeholder nor the dataset's <image1>
    assert payload["max_completion_tokens"] == 16384 and payload["temperature"] == 0.0


def test_vllm_text_context_without_chat_template(setup: tuple[dict[str, str], str]) -> None:
    """A base model on `vllm` (or `hf`): the library, a blank line, then lm-eval's aime25 prompt."""
    _, block = setup
    (instance,) = requests("ted_aime", setup, {"pretrained": "Qwen/Qwen3-8B", "revision": "not-a-dataset-revision"}, chat=False)
    assert instance.args[0] == f"{block}\n\nQuestion: {fx.AIME25_ROWS[0]['problem']}\nAnswer:"
    assert instance.args[1]["max_gen_toks"] == 32768 and "Question:" in instance.args[1]["until"]


def test_vllm_vlm_context_has_one_placeholder_per_image(setup: tuple[dict[str, str], str]) -> None:
    """`vllm-vlm` (like `hf-multimodal`) maps each `<image>` in the chat text to one image."""
    (instance,) = requests("ted_mathvision", setup, {"pretrained": "Qwen/Qwen2.5-VL-7B-Instruct"}, chat=True)
    system, user = json.loads(instance.args[0])
    assert system["role"] == "system" and user["content"].count("<image>") == len(instance.args[2]["visual"]) == 1
    assert user["content"].startswith("<image>\nPlease solve the problem")
